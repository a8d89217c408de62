/**
 * NATS triggers: a message on a subject a registered workflow declares
 * (`triggers: [{ nats: { subject, params, idempotencyKey } }]`) starts a run
 * of it. One subscription per distinct subject, in the queue group
 * `drover-triggers` (several control planes on one bus share the work),
 * made and dropped as workflows are applied (Workflows.applied).
 *
 * The body is JSON, mapped to params with CEL like a webhook body
 * (mapping.ts: `body` and `subject`). The idempotency key is the trigger's
 * expression, else the message's `Nats-Msg-Id` header (JetStream's
 * de-duplication id), else none. A message with a reply subject (a NATS
 * request) is answered once the runs it started are on disk:
 * `{"results": [{"workflow", "runId", "deduplicated"} | {"workflow", "error": {code, message, hint, problems?}}]}`
 * (reply subjects under `_INBOX.` only),
 * so a publisher that retries until it has an answer, with a key, starts
 * each run exactly once. Core NATS keeps nothing for a control plane that
 * is down: fire-and-forget publishes made then are lost (docs/triggers.md).
 *
 * Messages wait in a bounded queue and are handled a few at a time; past
 * the queue's bound they are refused (TOO_MANY_REQUESTS to a request) and
 * counted in the log, never held without limit.
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { ApiError } from '../errors.js';
import { PeerLog, type Logger } from '../log.js';
import type { NatsTrigger } from '../../common/workflow/model/plan.js';
import type { Runs } from '../runs.js';
import type { AuditLog } from '../security/audit.js';
import type { Workflows } from '../workflows.js';
import { mapEvent, notedProblem } from './mapping.js';

/** The queue group every control plane's trigger subscriptions join. */
export const NATS_TRIGGER_QUEUE = 'drover-triggers';
/** Largest body taken (a nats-server's default max_payload is 1 MiB too). */
export const MAX_NATS_BODY = 1024 * 1024;
/** Messages handled at once, and waiting in all; past that they are refused. */
const IN_FLIGHT = 16;
export const MAX_QUEUED = 1024;

export interface NatsTriggerDeps {
  nc: NatsConnection;
  workflows: Workflows;
  runs: Runs;
  audit?: AuditLog;
  log: Logger;
  now: () => number;
}

interface Target {
  workflow: string;
  version: number;
  trigger: NatsTrigger;
}

type Result = { workflow: string; runId: string; deduplicated: boolean } | { workflow: string; error: { code: string; message: string; hint: string; problems?: { path: string; message: string }[] } };

export class NatsTriggers {
  private subs = new Map<string, Subscription>();
  private targets = new Map<string, Target[]>();
  private queue: { msg: Msg; subject: string }[] = [];
  private active = 0;
  private stopped = false;
  private readonly peerLog: PeerLog;
  private readonly unsubscribe: () => void;

  constructor(private readonly d: NatsTriggerDeps) {
    this.peerLog = new PeerLog(d.log, d.now);
    this.refresh();
    this.unsubscribe = d.workflows.applied.subscribe(() => this.refresh());
  }

  /** The subjects subscribed to now, sorted. */
  subjects(): string[] {
    return [...this.subs.keys()].sort();
  }

  /** Reads the registry's NATS triggers again: subscribes to new subjects, drops the ones no workflow declares any more. */
  refresh() {
    if (this.stopped) return;
    const targets = new Map<string, Target[]>();
    for (const w of this.d.workflows.triggers()) {
      for (const t of w.triggers) {
        if (t.kind !== 'nats') continue;
        const list = targets.get(t.subject) ?? [];
        list.push({ workflow: w.workflow, version: w.version, trigger: t });
        targets.set(t.subject, list);
      }
    }
    this.targets = targets;
    for (const [subject, sub] of this.subs) {
      if (targets.has(subject)) continue;
      sub.unsubscribe();
      this.subs.delete(subject);
      this.d.log.info({ subject }, 'NATS trigger subscription dropped');
    }
    for (const [subject, list] of targets) {
      if (this.subs.has(subject)) continue;
      const sub = this.d.nc.subscribe(subject, { queue: NATS_TRIGGER_QUEUE, callback: (err, msg) => (err ? this.subscriptionFailed(subject, err) : this.enqueue(msg, subject)) });
      this.subs.set(subject, sub);
      this.d.log.info({ subject, workflows: list.map((t) => t.workflow) }, 'NATS trigger subscribed');
    }
  }

  /** Unsubscribes (the connection's drain would too) and refuses what is still queued. */
  stop() {
    this.stopped = true;
    this.unsubscribe();
    for (const sub of this.subs.values()) sub.unsubscribe();
    this.subs.clear();
    for (const { msg } of this.queue.splice(0)) answer(msg, [{ workflow: '', error: { code: 'UNAVAILABLE', message: 'the control plane is shutting down; nothing was started', hint: 'send it again' } }]);
  }

  private subscriptionFailed(subject: string, err: Error) {
    // A permission violation: the control plane's NATS user may not subscribe there (docs/triggers.md#nats-permissions).
    this.peerLog.warn(`sub:${subject}`, { subject, err: err.message }, `NATS trigger on "${subject}" receives nothing: ${err.message}; the control plane's NATS user needs subscribe permission on it`);
  }

  private enqueue(msg: Msg, subject: string) {
    if (this.stopped) return;
    if (this.queue.length >= MAX_QUEUED) {
      this.peerLog.warn('full', { subject: msg.subject, queued: this.queue.length }, `NATS trigger messages are arriving faster than runs start: refused one on ${msg.subject} (${MAX_QUEUED} waiting)`);
      answer(msg, [{ workflow: '', error: { code: 'TOO_MANY_REQUESTS', message: `${MAX_QUEUED} trigger messages are waiting already; nothing was started`, hint: 'send it again in a second' } }]);
      return;
    }
    this.queue.push({ msg, subject });
    this.pump();
  }

  private pump() {
    while (this.active < IN_FLIGHT && this.queue.length) {
      const { msg, subject } = this.queue.shift()!;
      this.active++;
      void this.deliver(msg, subject)
        .catch((err: unknown) => this.d.log.error({ err, subject: msg.subject }, 'NATS trigger message failed'))
        .finally(() => {
          this.active--;
          this.pump();
        });
    }
  }

  private async deliver(msg: Msg, subject: string): Promise<void> {
    const targets = this.targets.get(subject) ?? [];
    if (!targets.length) {
      // Queued while its workflow was applied without the trigger.
      return answer(msg, [{ workflow: '', error: { code: 'NO_TRIGGER', message: `no registered workflow listens on ${msg.subject} any more; nothing was started`, hint: 'see `drover workflow ls`' } }]);
    }
    const refuse = (code: string, message: string, hint: string) => {
      this.peerLog.warn(`bad:${subject}`, { subject: msg.subject, code }, `NATS trigger: refused a message on ${msg.subject}: ${message}`);
      answer(msg, targets.map((t) => ({ workflow: t.workflow, error: { code, message, hint } })));
    };
    if (msg.data.length > MAX_NATS_BODY) return refuse('PAYLOAD_TOO_LARGE', `the body is ${msg.data.length} bytes, over the limit of ${MAX_NATS_BODY} bytes (1 MiB)`, 'send only what the workflow needs');
    let body: unknown;
    try {
      body = JSON.parse(Buffer.from(msg.data).toString('utf8'));
    } catch (err) {
      return refuse('INVALID_JSON', `the body is not JSON: ${(err as Error).message}`, 'send a JSON document');
    }
    const msgId = msg.headers?.get('Nats-Msg-Id') ?? '';
    const results: Result[] = [];
    for (const t of targets) {
      // One target's internal failure answers for that target only: the runs the others started are still told.
      results.push(
        await this.launch(t, msg, body, msgId).catch((err: unknown) => {
          this.d.log.error({ err, subject: msg.subject, workflow: t.workflow }, 'NATS trigger launch failed');
          return { workflow: t.workflow, error: { code: 'INTERNAL', message: 'internal error; nothing was started for this workflow', hint: 'see the control plane log' } };
        }),
      );
    }
    answer(msg, results);
  }

  private async launch(t: Target, msg: Msg, body: unknown, msgId: string): Promise<Result> {
    const mapped = mapEvent(t.trigger, { body, subject: msg.subject });
    const key = mapped.idempotencyKey || msgId;
    const audit = (result: string, detail: Record<string, string> = {}) =>
      this.d.audit?.record({ actor: { kind: 'nats', id: msg.subject }, action: 'nats.deliver', target: t.workflow, from: 'nats', result, detail });
    if (mapped.keyProblem) {
      audit('INVALID_INPUT');
      return { workflow: t.workflow, error: { code: 'INVALID_INPUT', message: `no idempotency key: ${mapped.keyProblem}`, hint: 'send the field the trigger reads its idempotency key from' } };
    }
    try {
      const l = await this.d.runs.launch({ source: '', filename: '', workflowRef: `${t.workflow}@${t.version}`, params: mapped.params, trigger: `nats:${msg.subject}`, idempotencyKey: key || undefined });
      audit('ok', { id: l.runId, ...(l.deduplicated ? { deduplicated: 'true' } : {}), ...(key ? { idempotencyKey: key } : {}) });
      if (!l.deduplicated) this.d.log.info({ subject: msg.subject, workflow: t.workflow, run: l.runId }, 'NATS message started a run');
      return { workflow: t.workflow, runId: l.runId, deduplicated: l.deduplicated };
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      audit(err.code);
      this.peerLog.warn(`launch:${t.workflow}:${err.code}`, { subject: msg.subject, workflow: t.workflow, code: err.code }, `NATS message on ${msg.subject} started no run of ${t.workflow}: ${err.message}`);
      const problems = err.problems.map((p) => notedProblem(p, mapped.notes, 'the NATS trigger'));
      return { workflow: t.workflow, error: { code: err.code, message: err.message, hint: err.code === 'INVALID_PARAMS' ? 'the body does not give the params the workflow needs: see problems' : err.hint, ...(problems.length ? { problems: problems.map(({ path, message }) => ({ path, message })) } : {}) } };
    }
  }
}

/**
 * Answers a request (a message with a reply subject); a plain publish gets
 * nothing. Only inboxes are answered: a reply subject pointing elsewhere
 * (the agents' link, another event subject) is not published on.
 */
function answer(msg: Msg, results: Result[]) {
  if (!msg.reply || !msg.reply.startsWith('_INBOX.')) return;
  try {
    msg.respond(JSON.stringify({ results }));
  } catch {
    // The connection is closing: the requester times out and sends again.
  }
}
