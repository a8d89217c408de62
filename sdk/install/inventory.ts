/**
 * The host inventory of `drover agent install --inventory hosts.yaml`: a list
 * of hosts, or a mapping with `defaults` applied to every host and `hosts`.
 *
 * ```yaml
 * defaults:
 *   user: deploy
 *   identity: ~/.ssh/drover
 *   labels: { site: ams }
 * hosts:
 *   - host: 10.0.0.5
 *     name: web-1
 *     labels: { role: web }
 *   - { host: 10.0.0.6, port: 2222, user: root, name: db-1, labels: { role: db } }
 * ```
 */
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { AGENT_NAME, LABEL_KEY, LABEL_VALUE } from '../../common/names.js';
import { FileNotFoundError, InvalidInputError, type Problem } from '../errors.js';
import { expandPath } from './options.js';
import { SSH_PORT, type SshTarget } from './target.js';

/** One host of an inventory, defaults applied. */
export interface InventoryHost {
  target: SshTarget;
  /** Private key path, resolved against the inventory file's directory. */
  identity?: string;
  name?: string;
  /** Undefined when neither the flags nor the file give any (an upgrade then keeps the installed labels). */
  labels?: Record<string, string>;
}

const labels = z.record(z.string().regex(LABEL_KEY, 'label keys use letters, digits, ".", "-", "_", "/"'), z.union([z.string(), z.number(), z.boolean()]).transform(String).pipe(z.string().regex(LABEL_VALUE, 'label values use letters, digits, ".", "-", "_"')));
const common = {
  user: z.string().regex(/^[A-Za-z0-9._-]+$/, 'a user name').optional(),
  port: z.number().int().min(1).max(65535).optional(),
  identity: z.string().min(1).optional(),
  labels: labels.optional(),
};
const hostSchema = z.strictObject({
  host: z.string().regex(/^[^\s@/]+$/, 'a host name or address'),
  name: z.string().regex(AGENT_NAME, 'letters, digits, ".", "-", "_", at most 63').optional(),
  ...common,
});
const defaultsSchema = z.strictObject(common);
const listSchema = z.array(hostSchema).min(1, 'the inventory lists no hosts');
const mappingSchema = z.strictObject({ defaults: defaultsSchema.optional(), hosts: listSchema });

/**
 * Reads an inventory file. Labels merge `flagLabels` < defaults < host.
 * Throws FileNotFoundError, or InvalidInputError with located problems.
 */
export function readInventory(file: string, flagLabels: Record<string, string> = {}, defaultUser?: string): InventoryHost[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new FileNotFoundError(`cannot read the inventory ${file}: ${(err as Error).message}`, { cause: err });
  }
  return parseInventory(text, file, flagLabels, defaultUser);
}

/** Parses inventory text; `file` names it in errors and anchors relative identity paths. */
export function parseInventory(text: string, file: string, flagLabels: Record<string, string> = {}, defaultUser?: string): InventoryHost[] {
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new InvalidInputError(`${file} is not valid YAML: ${doc.errors[0].message}`, { hint: 'see docs/install.md for the inventory format' });
  }
  const raw: unknown = doc.toJS();
  // Not a z.union: its single "invalid input" would hide which field is wrong.
  const parsed = Array.isArray(raw) ? listSchema.safeParse(raw) : mappingSchema.safeParse(raw);
  if (!parsed.success) {
    const problems: Problem[] = parsed.error.issues.map((issue) => {
      const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
      // A missing field has no node: point at the nearest enclosing one.
      let node: { range?: [number, number] } | undefined;
      for (let n = issue.path.length; n >= 0 && !node?.range; n--) {
        node = doc.getIn(issue.path.slice(0, n) as (string | number)[], true) as { range?: [number, number] } | undefined;
      }
      const pos = node?.range ? lineCol(text, node.range[0]) : { line: 0, column: 0 };
      return { path, ...pos, message: issue.message, severity: 'error' };
    });
    throw new InvalidInputError(`${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'} in the inventory`, {
      hint: 'an inventory is a list of hosts (host, user, port, identity, name, labels), or {defaults, hosts}; see docs/install.md',
      problems,
    });
  }
  const value = parsed.data;
  const defaults = Array.isArray(value) ? {} : (value.defaults ?? {});
  const hosts = Array.isArray(value) ? value : value.hosts;
  const base = dirname(file);
  const out = hosts.map((h): InventoryHost => {
    const identity = h.identity ?? defaults.identity;
    const merged = { ...flagLabels, ...(defaults.labels ?? {}), ...(h.labels ?? {}) };
    return {
      target: { user: h.user ?? defaults.user ?? defaultUser ?? userInfo().username, host: h.host, port: h.port ?? defaults.port ?? SSH_PORT },
      ...(identity ? { identity: expandPath(identity, base) } : {}),
      ...(h.name ? { name: h.name } : {}),
      ...(Object.keys(merged).length > 0 ? { labels: merged } : {}),
    };
  });
  const seen = new Map<string, number>();
  out.forEach((h, i) => {
    for (const key of [h.name && `name ${h.name}`, `host ${h.target.host}:${h.target.port}`]) {
      if (!key) continue;
      if (seen.has(key)) {
        throw new InvalidInputError(`${file}: hosts[${seen.get(key)}] and hosts[${i}] have the same ${key}`, { hint: 'every host and every agent name may appear once' });
      }
      seen.set(key, i);
    }
  });
  return out;
}

function lineCol(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset).split('\n');
  return { line: before.length, column: before[before.length - 1].length + 1 };
}
