/**
 * Webhooks: `POST /hooks/<name>` on the control plane's HTTP port starts a
 * run of the registered workflow whose `triggers` declare that webhook
 * (Workflows.triggers(), read again on Workflows.applied).
 *
 * A delivery is checked in this order, cheapest and least revealing first:
 * places (concurrent requests per peer and in all: 429), method (405), hook
 * (404), media type (415), size (413, also while reading), the secret being
 * stored (503), the signature (401: signature.ts), a replay of a signature
 * accepted before (409; remembered in the store until its tolerance ends,
 * so a restart forgets none), JSON (400), the mapping to params
 * (mapping.ts) and the params themselves (422 naming each). Then
 * Runs.launch with the trigger's idempotency key: 202 {"runId"} for a new
 * run, 200 {"runId", "deduplicated": true} for a repeated key. Errors are
 * JSON: {"error": {"code", "message", "hint"}} (and "problems" for 422).
 *
 * The accepted signature is put in the store before the launch, so the
 * launch's flush writes it with the run; a launch that fails forgets it
 * again (the sender's retry is not a replay).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Problem } from '../../common/errors.js';
import { ApiError } from '../errors.js';
import { PeerLog, type Logger } from '../log.js';
import type { WebhookTrigger } from '../../common/workflow/model/plan.js';
import type { Runs } from '../runs.js';
import type { AuditLog } from '../security/audit.js';
import type { Store } from '../store/store.js';
import type { Workflows } from '../workflows.js';
import { mapEvent, notedProblem } from './mapping.js';
import { SIGNATURE_HEADER, verifySignature } from './signature.js';

/** Largest body accepted (GitHub's deliveries are capped at 25 MiB; an HR event is a few KiB). */
export const MAX_HOOK_BODY = 1024 * 1024;
/** Deliveries being handled at once from one peer address, and in all; past either: 429. */
export const MAX_HOOK_REQUESTS_PER_PEER = 8;
export const MAX_HOOK_REQUESTS = 64;
/** A body not received in full within this is answered 408 (a sender that trickles holds a place). */
const BODY_TIMEOUT_MS = 10_000;

/** What webhooks need of stored secrets: a value, read to check signatures (not audited per read; launches are). */
export interface HookSecrets {
  value(name: string): string | undefined;
}

export interface WebhookDeps {
  workflows: Workflows;
  runs: Runs;
  store: Store;
  secrets: HookSecrets;
  audit?: AuditLog;
  log: Logger;
  now: () => number;
}

interface Hook {
  workflow: string;
  version: number;
  trigger: WebhookTrigger;
}

/** An answer other than success. */
class HookError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint = '',
    readonly problems: Problem[] = [],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** HTTP statuses for the API codes a launch can refuse with. */
const LAUNCH_STATUS: Record<string, number> = {
  INVALID_PARAMS: 422,
  INVALID_INPUT: 422,
  INVALID_WORKFLOW: 422,
  IDEMPOTENCY_KEY_REUSED: 409,
  RUN_SKIPPED: 409,
  NO_MATCHING_AGENT: 503,
  UNAVAILABLE: 503,
  WORKFLOW_NOT_FOUND: 404,
};

export class Webhooks {
  private hooks = new Map<string, Hook>();
  private active = 0;
  private perPeer = new Map<string, number>();
  private peerLog: PeerLog;

  constructor(private readonly d: WebhookDeps) {
    this.peerLog = new PeerLog(d.log, d.now);
    this.refresh();
    d.workflows.applied.subscribe(() => this.refresh());
  }

  /** Reads the registry's webhook triggers again. */
  refresh() {
    const hooks = new Map<string, Hook>();
    for (const w of this.d.workflows.triggers()) {
      for (const t of w.triggers) if (t.kind === 'webhook') hooks.set(t.name, { workflow: w.workflow, version: w.version, trigger: t });
    }
    this.hooks = hooks;
  }

  /** Registered hooks whose secret is not stored: they answer 503 until it is. */
  missingSecrets(): { hook: string; workflow: string; secret: string }[] {
    return [...this.hooks].filter(([, h]) => this.d.secrets.value(h.trigger.secret) === undefined).map(([hook, h]) => ({ hook, workflow: h.workflow, secret: h.trigger.secret }));
  }

  /** Answers one request for /hooks/<name>. */
  async handle(req: IncomingMessage, res: ServerResponse, name: string, peer: string): Promise<void> {
    const fromPeer = this.perPeer.get(peer) ?? 0;
    if (this.active >= MAX_HOOK_REQUESTS || fromPeer >= MAX_HOOK_REQUESTS_PER_PEER) {
      return send(res, 429, errorBody('TOO_MANY_REQUESTS', `too many webhook deliveries at once${fromPeer >= MAX_HOOK_REQUESTS_PER_PEER ? ` from ${peer}` : ''}`, 'retry after a second'), { 'retry-after': '1', connection: 'close' });
    }
    this.active++;
    this.perPeer.set(peer, fromPeer + 1);
    try {
      const { status, body } = await this.deliver(req, name, peer);
      send(res, status, body);
    } catch (err) {
      const e = err instanceof HookError ? err : new HookError(500, 'INTERNAL', 'internal error', 'see the control plane log');
      if (!(err instanceof HookError)) this.d.log.error({ err, hook: name }, 'webhook delivery failed');
      const body = errorBody(e.code, e.message, e.hint, e.problems);
      // A body left unread (refused before reading it) would be read into nothing: close instead.
      send(res, e.status, body, req.complete ? e.headers : { ...e.headers, connection: 'close' });
    } finally {
      this.active--;
      const n = (this.perPeer.get(peer) ?? 1) - 1;
      if (n > 0) this.perPeer.set(peer, n);
      else this.perPeer.delete(peer);
    }
  }

  private async deliver(req: IncomingMessage, name: string, peer: string): Promise<{ status: number; body: unknown }> {
    if (req.method !== 'POST') throw new HookError(405, 'METHOD_NOT_ALLOWED', `webhooks take POST, not ${req.method}`, 'send the event with POST', [], { allow: 'POST' });
    const hook = this.hooks.get(name);
    if (!hook) {
      throw new HookError(404, 'WEBHOOK_NOT_FOUND', `no webhook named "${name.slice(0, 64)}" is registered`, 'a workflow declares it under triggers (- webhook: { name, secret }) and is stored with `drover workflow apply`');
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/json' && !/^application\/[a-z0-9.+-]+\+json$/.test(type)) {
      throw new HookError(415, 'UNSUPPORTED_MEDIA_TYPE', `the body must be JSON (Content-Type: application/json), not ${type ? `"${type.slice(0, 60)}"` : 'untyped'}`, 'send Content-Type: application/json');
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_HOOK_BODY) throw tooLarge(declared);
    const secret = this.d.secrets.value(hook.trigger.secret);
    if (secret === undefined) {
      this.peerLog.warn(`hook:${name}`, { hook: name, workflow: hook.workflow, secret: hook.trigger.secret }, `webhook ${name} was called but its secret ${hook.trigger.secret} is not stored: deliveries are refused (503) until it is`);
      throw new HookError(503, 'WEBHOOK_SECRET_MISSING', `webhook "${name}" cannot check signatures: its secret ${hook.trigger.secret} is not stored on the control plane`, `an admin stores it with \`drover secret set ${hook.trigger.secret}\` (the value on stdin)`);
    }
    const raw = await readBody(req);
    const now = this.d.now();
    const verdict = verifySignature(headerValue(req.headers[SIGNATURE_HEADER]), raw, secret, now, hook.trigger.toleranceMs);
    if (!verdict.ok) {
      this.peerLog.warn(peer, { hook: name, peer, reason: verdict.reason }, `webhook ${name}: refused a delivery from ${peer}: ${verdict.message}`);
      throw new HookError(401, 'UNAUTHENTICATED', verdict.message, verdict.hint, [], { 'www-authenticate': 'X-Drover-Signature' });
    }
    const replayId = `${name}:${verdict.replayId}`;
    const seen = this.d.store.getSeenSignature(replayId);
    if (seen && seen.expiresMs > now) {
      throw new HookError(409, 'WEBHOOK_REPLAYED', `this signature (t=${verdict.t}) was accepted before: a replayed delivery is refused`, 'sign each delivery, retries included, with the current time');
    }
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      throw new HookError(400, 'INVALID_JSON', `the body is not JSON: ${(err as Error).message}`, 'send a JSON document');
    }
    const mapped = mapEvent(hook.trigger, { body, headers: flatHeaders(req) });
    if (mapped.keyProblem) throw new HookError(422, 'INVALID_INPUT', `no idempotency key: ${mapped.keyProblem}`, 'send the field the trigger reads its idempotency key from');
    // A second past the window verifySignature accepts, so no replay outlives its memory.
    this.d.store.putSeenSignature({ id: replayId, expiresMs: verdict.t * 1000 + hook.trigger.toleranceMs + 1000 });
    const trigger = `webhook:${name}`;
    const audit = (result: string, detail: Record<string, string> = {}) =>
      this.d.audit?.record({ actor: { kind: 'webhook', id: name }, action: 'webhook.deliver', target: hook.workflow, from: peer, result, detail });
    try {
      const l = await this.d.runs.launch({ source: '', filename: '', workflowRef: `${hook.workflow}@${hook.version}`, params: mapped.params, trigger, idempotencyKey: mapped.idempotencyKey || undefined });
      audit('ok', { id: l.runId, ...(l.deduplicated ? { deduplicated: 'true' } : {}), ...(mapped.idempotencyKey ? { idempotencyKey: mapped.idempotencyKey } : {}) });
      if (!l.deduplicated) this.d.log.info({ hook: name, workflow: hook.workflow, run: l.runId, peer }, 'webhook started a run');
      return l.deduplicated ? { status: 200, body: { runId: l.runId, deduplicated: true } } : { status: 202, body: { runId: l.runId } };
    } catch (err) {
      this.d.store.deleteSeenSignature(replayId);
      if (!(err instanceof ApiError)) throw err;
      audit(err.code);
      const problems = err.problems.map((p) => notedProblem(p, mapped.notes, 'the webhook'));
      throw new HookError(LAUNCH_STATUS[err.code] ?? 500, err.code, err.message, err.code === 'INVALID_PARAMS' ? 'the body does not give the params the workflow needs: see problems' : err.hint, problems);
    }
  }
}

function tooLarge(bytes: number): HookError {
  return new HookError(413, 'PAYLOAD_TOO_LARGE', `the body is ${bytes > MAX_HOOK_BODY ? `${bytes} bytes, ` : ''}over the limit of ${MAX_HOOK_BODY} bytes (1 MiB)`, 'send a smaller event: only what the workflow needs');
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => finish(new HookError(408, 'REQUEST_TIMEOUT', `the body did not arrive within ${BODY_TIMEOUT_MS / 1000} s`, 'send the whole request at once')), BODY_TIMEOUT_MS);
    const finish = (err?: Error) => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      if (err) {
        req.pause();
        reject(err);
      } else resolve(Buffer.concat(chunks, size));
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > MAX_HOOK_BODY) return finish(tooLarge(0));
      chunks.push(c);
    };
    const onEnd = () => finish();
    const onError = (err: Error) => finish(new HookError(400, 'BAD_REQUEST', `the request could not be read: ${err.message}`));
    // A sender that goes away mid-body gives its place back at once, not at the timeout.
    const onClose = () => {
      if (!req.complete) finish(new HookError(400, 'BAD_REQUEST', 'the sender closed the connection before the body was complete'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

const headerValue = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(',') : v);

/** Request headers for CEL: lower-case names, repeated ones joined with ", ". */
function flatHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

function errorBody(code: string, message: string, hint = '', problems: Problem[] = []) {
  return { error: { code, message, hint, ...(problems.length ? { problems: problems.map(({ path, message: m }) => ({ path, message: m })) } : {}) } };
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(`${JSON.stringify(body)}\n`);
}
