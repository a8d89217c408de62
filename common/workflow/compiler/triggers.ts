/**
 * A workflow's `triggers`: checked with the rest of the document (every
 * compile, so `drover validate` reports them) and compiled into
 * TriggerPlans for the trigger services (webhooks, schedules, NATS). Checks
 * here need nothing but the document: one kind per trigger, a cron
 * expression croner accepts, a time zone Intl knows, CEL mappings that
 * compile and name declared params, names unique in the document. Names
 * unique across registered workflows are checked when one is applied.
 */
import { Environment } from '@marcbachmann/cel-js';
import { Cron } from 'croner';
import { parseDuration } from '../../duration.js';
import { triggerSubjectProblem } from '../../nats-subject.js';
import type { TriggerPlan } from '../model/plan.js';
import { checkExpression } from './expressions.js';
import type { Problems } from './problems.js';
import { isObject } from './raw.js';
import type { TriggerDoc } from './schema.js';

/** How far a webhook signature's timestamp may be from now unless the trigger says (Stripe's default). */
export const DEFAULT_WEBHOOK_TOLERANCE_MS = 5 * 60_000;

const CRON_ONLY = ['timezone', 'catchup', 'params', 'name'] as const;

/** Whether croner reads `cron` (5 fields, or 6 with seconds) in `timezone`; the reason when not. */
export function cronProblem(cron: string, timezone?: string): string | undefined {
  if (timezone !== undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    } catch {
      return `unknown time zone "${timezone}": use an IANA name such as UTC, Europe/Berlin or America/New_York`;
    }
  }
  const fields = cron.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6) return `"${cron}" has ${fields} fields: a cron expression has 5 (minute hour day month weekday) or 6 (seconds first)`;
  try {
    new Cron(cron, { paused: true, timezone });
  } catch (err) {
    return `"${cron}" is not a cron expression: ${(err as Error).message}`;
  }
  return undefined;
}

function mappingEnvironment(kind: 'webhook' | 'nats'): Environment {
  const env = new Environment({ unlistedVariablesAreDyn: false }).registerVariable('body', 'dyn');
  return kind === 'webhook' ? env.registerVariable('headers', 'map') : env.registerVariable('subject', 'string');
}

/** Checks `raw.triggers` as far as its shape allows (the schema reports the shape itself). */
export function checkTriggers(raw: Record<string, unknown>, declaredParams: string[], problems: Problems): void {
  if (!Array.isArray(raw.triggers)) return;
  const names = new Map<string, number>();
  const seen = (name: string, i: number, path: (string | number)[]) => {
    const first = names.get(name);
    if (first !== undefined) problems.add(path, `trigger name "${name}" is already used by triggers[${first}]`);
    else names.set(name, i);
  };
  raw.triggers.forEach((t: unknown, i) => {
    if (!isObject(t)) return;
    const kinds = (['cron', 'webhook', 'nats'] as const).filter((k) => t[k] !== undefined);
    if (kinds.length !== 1) {
      problems.add(['triggers', i], kinds.length ? `a trigger has one of cron, webhook or nats, not ${kinds.join(' and ')}` : 'a trigger needs one of cron, webhook or nats');
      return;
    }
    const kind = kinds[0];
    if (kind === 'cron') {
      if (typeof t.cron === 'string') {
        const why = cronProblem(t.cron, typeof t.timezone === 'string' ? t.timezone : undefined);
        if (why) problems.add(['triggers', i, why.startsWith('unknown time zone') ? 'timezone' : 'cron'], why);
      }
      if (isObject(t.params)) {
        for (const p of Object.keys(t.params)) if (!declaredParams.includes(p)) problems.add(['triggers', i, 'params', p], unknownParam(p, declaredParams));
      }
      if (typeof t.name === 'string') seen(t.name, i, ['triggers', i, 'name']);
      return;
    }
    for (const k of CRON_ONLY) if (t[k] !== undefined) problems.add(['triggers', i, k], `"${k}" belongs to cron triggers; a ${kind} trigger sets its params under ${kind}.params`);
    const body = t[kind];
    if (!isObject(body)) return;
    const env = mappingEnvironment(kind);
    if (isObject(body.params)) {
      for (const [p, expr] of Object.entries(body.params)) {
        if (!declaredParams.includes(p)) problems.add(['triggers', i, kind, 'params', p], unknownParam(p, declaredParams));
        else if (typeof expr === 'string') {
          const why = checkExpression(env, expr).error;
          if (why) problems.add(['triggers', i, kind, 'params', p], `not a CEL expression: ${why}`);
        }
      }
    }
    if (typeof body.idempotencyKey === 'string') {
      const why = checkExpression(env, body.idempotencyKey).error;
      if (why) problems.add(['triggers', i, kind, 'idempotencyKey'], `not a CEL expression: ${why}`);
    }
    if (kind === 'webhook' && typeof body.name === 'string') seen(body.name, i, ['triggers', i, 'webhook', 'name']);
    if (kind === 'nats' && typeof body.subject === 'string') {
      const why = triggerSubjectProblem(body.subject);
      if (why) problems.add(['triggers', i, 'nats', 'subject'], why);
    }
  });
}

function unknownParam(name: string, declared: string[]): string {
  return `"${name}" is not a param of this workflow${declared.length ? ` (its params: ${declared.join(', ')})` : ' (it declares none)'}`;
}

/** The triggers of a document that passed the checks. */
export function compileTriggers(workflow: string, triggers: readonly TriggerDoc[] | undefined): TriggerPlan[] {
  let schedules = 0;
  return (triggers ?? []).map((t): TriggerPlan => {
    if (t.webhook) {
      const w = t.webhook;
      return {
        kind: 'webhook',
        name: w.name,
        secret: w.secret,
        params: w.params ?? {},
        idempotencyKey: w.idempotencyKey ?? '',
        toleranceMs: w.tolerance === undefined ? DEFAULT_WEBHOOK_TOLERANCE_MS : parseDuration(w.tolerance)!,
      };
    }
    if (t.nats) return { kind: 'nats', subject: t.nats.subject, params: t.nats.params ?? {}, idempotencyKey: t.nats.idempotencyKey ?? '' };
    schedules++;
    return {
      kind: 'cron',
      name: t.name ?? (schedules === 1 ? workflow : `${workflow}-${schedules}`),
      cron: t.cron!,
      timezone: t.timezone ?? 'UTC',
      catchup: t.catchup ?? 'none',
      params: Object.fromEntries(Object.entries(t.params ?? {}).map(([k, v]) => [k, Array.isArray(v) ? JSON.stringify(v) : String(v)])),
    };
  });
}
