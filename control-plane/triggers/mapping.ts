/**
 * An event's JSON to a run's params, with the trigger's CEL expressions
 * (common/workflow/compiler/triggers.ts checked them at apply): `body` is the JSON body, and
 * webhooks also see `headers` (lower-case names), NATS messages `subject`.
 * Shared by webhooks and NATS triggers. Values become the wire form params
 * take (strings; lists as JSON), then are validated like any params.
 *
 * An expression that finds nothing (`body.user.login` of a body without
 * user) leaves its param out, so a default applies; a param that is then
 * missing is reported by the params check, with the reason noted here.
 */
import { Environment } from '@marcbachmann/cel-js';
import type { Problem } from '../../common/errors.js';

export interface EventVars {
  body: unknown;
  headers?: Record<string, string>;
  subject?: string;
}

export interface Mapped {
  params: Record<string, string>;
  /** Why a param was left out: "body.user.login: No such key: login". */
  notes: Record<string, string>;
  /** The idempotency key ('' when the trigger has none). */
  idempotencyKey: string;
  /** Set when the idempotency key expression gave nothing usable. */
  keyProblem?: string;
}

type Compiled = (ctx: Record<string, unknown>) => unknown;

const webhookEnv = new Environment({ unlistedVariablesAreDyn: false }).registerVariable('body', 'dyn').registerVariable('headers', 'map');
const natsEnv = new Environment({ unlistedVariablesAreDyn: false }).registerVariable('body', 'dyn').registerVariable('subject', 'string');
/** Expressions of registered triggers, parsed once (they only come from applied workflows). */
const parsed = new Map<string, Compiled>();

function compiled(expr: string, nats: boolean): Compiled {
  const k = `${nats ? 'n' : 'w'}:${expr}`;
  let fn = parsed.get(k);
  if (!fn) {
    fn = (nats ? natsEnv : webhookEnv).parse(expr) as unknown as Compiled;
    parsed.set(k, fn);
  }
  return fn;
}

/** A CEL value as a param's wire value, or why it cannot be one. */
function wireValue(v: unknown): { value: string } | { why: string } {
  if (typeof v === 'string') return { value: v };
  if (typeof v === 'number' || typeof v === 'bigint') return { value: String(v) };
  if (typeof v === 'boolean') return { value: v ? 'true' : 'false' };
  if (Array.isArray(v) && v.every((x) => ['string', 'number', 'boolean', 'bigint'].includes(typeof x))) return { value: JSON.stringify(v.map((x) => String(x))) };
  if (v === null || v === undefined) return { why: 'it is null' };
  return { why: `it is ${Array.isArray(v) ? 'a list of non-scalars' : 'an object'}, not a value` };
}

function evaluate(expr: string, nats: boolean, ctx: Record<string, unknown>): { value: string } | { why: string } {
  try {
    return wireValue(compiled(expr, nats)(ctx));
  } catch (err) {
    return { why: (err as Error).message.split('\n')[0] };
  }
}

/** Maps an event with a trigger's `params` and `idempotencyKey` expressions. */
export function mapEvent(trigger: { params: Record<string, string>; idempotencyKey: string }, vars: EventVars): Mapped {
  const nats = vars.subject !== undefined;
  const ctx: Record<string, unknown> = nats ? { body: vars.body, subject: vars.subject } : { body: vars.body, headers: vars.headers ?? {} };
  const out: Mapped = { params: {}, notes: {}, idempotencyKey: '' };
  for (const [name, expr] of Object.entries(trigger.params)) {
    const r = evaluate(expr, nats, ctx);
    if ('value' in r) out.params[name] = r.value;
    else out.notes[name] = `${expr}: ${r.why}`;
  }
  if (trigger.idempotencyKey) {
    const r = evaluate(trigger.idempotencyKey, nats, ctx);
    if ('value' in r && r.value !== '') out.idempotencyKey = r.value;
    else out.keyProblem = `the trigger's idempotencyKey ${trigger.idempotencyKey}: ${'why' in r ? r.why : 'it is empty'}`;
  }
  return out;
}

/** A params problem about a param the mapping found nothing for says so: "(the webhook maps it from body.user.login: No such key: login)". */
export function notedProblem(p: Problem, notes: Record<string, string>, via: string): Problem {
  const m = /^params\.([A-Za-z0-9_-]+)/.exec(p.path);
  const note = m && notes[m[1]];
  return note ? { ...p, message: `${p.message} (${via} maps it from ${note})` } : p;
}
