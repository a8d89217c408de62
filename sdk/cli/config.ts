/**
 * The CLI config file: `$DROVER_CONFIG`, else
 * `$XDG_CONFIG_HOME/drover/config.yaml` (`~/.config/drover/config.yaml`).
 * It supplies what a flag or the environment does not: flags > environment >
 * this file > defaults (context.ts applies the order). A file that is not
 * valid is refused with its path, the line and the key, never half-used.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { LineCounter, parseDocument, isMap, isScalar, type Pair } from 'yaml';
import { InvalidInputError } from '../errors.js';

/** What the file may hold, resolved (paths made absolute, `tokenFile` read). */
export interface CliConfig {
  /** Control plane address, HOST:PORT. (`server` is accepted as an older name for it.) */
  address?: string;
  /** API token, given inline or read from `tokenFile`. */
  token?: string;
  /** CA certificate file. */
  ca?: string;
  /** Default `-o` format of listings: table, wide, json or yaml. */
  output?: OutputFormat;
}

/** The `-o` formats of listings. */
export const OUTPUT_FORMATS = ['table', 'wide', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

const KEYS = ['address', 'server', 'token', 'tokenFile', 'ca', 'output'] as const;
type Key = (typeof KEYS)[number];

/** The config file's path for this environment. */
export function configFile(env: NodeJS.ProcessEnv = process.env): string {
  return env.DROVER_CONFIG || join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'drover', 'config.yaml');
}

const cache = new Map<string, CliConfig>();

/** The config file of `env`, read once per process; {} when there is none (an error when DROVER_CONFIG names a missing one). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): CliConfig {
  const file = configFile(env);
  let config = cache.get(file);
  if (!config) {
    if (!existsSync(file)) {
      if (env.DROVER_CONFIG) throw new InvalidInputError(`the config file ${file} (DROVER_CONFIG) does not exist`, { hint: 'create it (keys: address, token or tokenFile, ca, output) or unset DROVER_CONFIG' });
      config = {};
    } else config = parseConfig(readFileSync(file, 'utf8'), file);
    cache.set(file, config);
  }
  return config;
}

/** Parses and checks a config file's text; `file` names it in errors and anchors relative paths. */
export function parseConfig(text: string, file: string): CliConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const fail = (offset: number | undefined, what: string): never => {
    const line = offset === undefined ? 0 : lines.linePos(offset).line;
    throw new InvalidInputError(`config file ${file}${line ? ` line ${line}` : ''}: ${what}`, {
      hint: `it is YAML with the keys ${KEYS.filter((k) => k !== 'server').join(', ')}; see "Config file" in the README`,
    });
  };
  if (doc.errors.length) fail(doc.errors[0].pos[0], doc.errors[0].message.split('\n')[0]);
  if (doc.contents === null) return {};
  if (!isMap(doc.contents)) fail(doc.contents.range?.[0], 'expected a mapping of keys to values');
  const out: CliConfig = {};
  const base = dirname(resolve(file));
  const path = (p: string) => (isAbsolute(p) ? p : resolve(base, p.replace(/^~(?=\/)/, homedir())));
  for (const pair of (doc.contents as { items: Pair[] }).items) {
    const keyNode = pair.key;
    const key = isScalar(keyNode) ? String(keyNode.value) : '';
    const at = isScalar(keyNode) ? keyNode.range?.[0] : undefined;
    if (!(KEYS as readonly string[]).includes(key)) fail(at, `unknown key "${key}"`);
    const value = isScalar(pair.value) ? pair.value.value : undefined;
    if (typeof value !== 'string' || !value) fail(at, `key "${key}" must be a non-empty string`);
    const v = value as string;
    switch (key as Key) {
      case 'address':
      case 'server':
        out.address = v;
        break;
      case 'token':
        out.token = v;
        break;
      case 'tokenFile': {
        const f = path(v);
        if (!existsSync(f)) fail(at, `key "tokenFile": ${f} does not exist`);
        out.token = readFileSync(f, 'utf8').trim();
        break;
      }
      case 'ca':
        out.ca = path(v);
        break;
      case 'output':
        if (!(OUTPUT_FORMATS as readonly string[]).includes(v)) fail(at, `key "output": "${v}" is not one of ${OUTPUT_FORMATS.join(', ')}`);
        out.output = v as OutputFormat;
        break;
    }
  }
  return out;
}
