/**
 * `drover run --local` runs every step on its one local agent: each step's
 * target becomes that agent (labels, match expressions and agent names are
 * ignored; strategy, maxParallel and maxFailures stay, so a fan-out runs
 * once, as `step[local]`). Pure: a document in, a document out, and what
 * was ignored, for the notice.
 */
import { InvalidInputError } from '../../errors.js';

type Doc = Record<string, unknown>;

/** The result of `retarget`. */
export interface Retargeted {
  doc: Doc;
  /** Steps whose target was replaced, with the target as written ("role=directory"). */
  ignored: { id: string; target: string }[];
  /** Networks of inline ssh steps: the local agent proxies for them. */
  networks: string[];
  /** Ids of approval steps: someone has to decide them while the run waits. */
  approvals: string[];
}

const KEPT = ['strategy', 'maxParallel', 'maxFailures'] as const;

/** Every step of `doc` (steps and finally) targeted at `agent`. Throws InvalidInputError for a step --local cannot run. */
export function retarget(doc: Doc, agent: string): Retargeted {
  const ignored: Retargeted['ignored'] = [];
  const networks = new Set<string>();
  const approvals: string[] = [];
  const out: Doc = { ...doc };
  for (const section of ['steps', 'finally'] as const) {
    const list = doc[section];
    if (!Array.isArray(list)) continue;
    out[section] = list.map((raw: unknown) => {
      if (!isObject(raw)) return raw;
      const id = typeof raw.id === 'string' ? raw.id : '?';
      const target = isObject(raw.target) ? raw.target : undefined;
      if (isObject(raw.ssh)) {
        if (typeof raw.ssh.host !== 'string') {
          throw new InvalidInputError(`step ${id} drives a device of the inventory, and --local has no inventory`, {
            hint: 'give the device inline (ssh.host, ssh.user, ssh.credential) to try it locally, or run it against a fleet without --local',
          });
        }
        networks.add(typeof raw.ssh.network === 'string' ? raw.ssh.network : 'default');
        return raw;
      }
      if (raw.approval !== undefined) {
        approvals.push(id);
        return raw;
      }
      const written = target ? describe(target) : '';
      if (written) ignored.push({ id, target: written });
      const kept = Object.fromEntries(KEPT.filter((k) => target?.[k] !== undefined).map((k) => [k, target![k]]));
      return { ...raw, target: { agent, ...kept } };
    });
  }
  return { doc: out, ignored, networks: [...networks].sort(), approvals };
}

/** A target as written, for the notice: "role=directory", "agent=web-1", "site in (ams,fra)". */
function describe(t: Doc): string {
  const parts: string[] = [];
  if (typeof t.agent === 'string' && t.agent) parts.push(`agent=${t.agent}`);
  if (isObject(t.labels)) for (const [k, v] of Object.entries(t.labels)) parts.push(`${k}=${String(v)}`);
  if (Array.isArray(t.matchExpressions)) {
    for (const e of t.matchExpressions) if (isObject(e)) parts.push(`${String(e.key)} ${String(e.operator)}${Array.isArray(e.values) ? ` (${e.values.join(',')})` : ''}`);
  }
  return parts.join(',');
}

function isObject(v: unknown): v is Doc {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
