/**
 * One dashboard client on the /ws feed (the protocol: docs/security.md and
 * PLAN13 §2). The first message must be `auth` within AUTH_TIMEOUT_MS, else
 * the socket is closed with 4401. Then the client subscribes to topics and
 * is pushed changes from the in-process parts (the fleet, the runs' topics,
 * the store's logs), converted by api/convert.ts exactly as gRPC sends them.
 *
 * Messages are handled one at a time in arrival order (auth and cancel
 * wait for the token check), at most MAX_IN_FLIGHT queued; anything that is
 * not a JSON object with a known `type` is answered with BAD_REQUEST and
 * the connection stays.
 */
import type { WebSocket } from 'ws';
import { approverOfRecord } from '../approvals.js';
import { toAgentInfo, toDeviceInfo, toLogLine, toRunInfo, toRunSummary, toStepInfo } from '../api/convert.js';
import { ApiError } from '../errors.js';
import type { Devices } from '../devices.js';
import type { Fleet } from '../fleet.js';
import type { Logger } from '../log.js';
import type { Runs } from '../runs.js';
import type { AuditLog } from '../security/audit.js';
import type { LogRecord, Role, Store, TokenRecord } from '../store/store.js';
import type { HttpAuth } from './auth.js';
import type { AgentHistory } from './history.js';
import { Outbox } from './outbox.js';

/** A connection's token is checked again this often (and on each subscribe): a revoked or expired one loses its feed. */
const RECHECK_MS = 10_000;
/** Log lines waiting to be sent to one client; past it the oldest are dropped and the client is told how many. */
const MAX_PENDING_LOG_LINES = 10_000;
/** The first message must be `auth` within this. */
export const AUTH_TIMEOUT_MS = 10_000;
/** Close code for a client that did not authenticate (or whose token was refused). */
export const CLOSE_UNAUTHENTICATED = 4401;
/** Close code for a client that reads too slowly. */
export const CLOSE_TOO_SLOW = 4408;
/** A client message longer than this is answered with BAD_REQUEST (the socket's own limit, which closes it, is WS_MAX_PAYLOAD). */
export const MAX_MESSAGE_BYTES = 16 * 1024;
/** Messages of one client waiting to be handled; past it they are refused. */
const MAX_IN_FLIGHT = 32;
/** Runs in the `runs` snapshot (newest first). */
export const RUNS_LISTED = 50;
/** Stored log lines sent on a logs subscription: the last this many. */
export const LOG_LINES_FIRST = 2000;
/** Live log lines per `logs` message. */
const LOG_LINES_PER_MESSAGE = 1000;
/** A stats subscription is pushed again after a run ends, at most this often. */
const STATS_EVERY_MS = 2000;
/** Longest id, step or reason accepted in a message. */
const MAX_FIELD = 1024;

/** The stats service (control-plane/metrics/stats.ts). */
export interface StatsSource {
  get(req: { workflow?: string; windowMs?: number; buckets?: number }): object;
}

export interface FeedDeps {
  fleet: Fleet;
  runs: Runs;
  store: Store;
  devices: Devices;
  history: AgentHistory;
  auth: HttpAuth;
  audit?: AuditLog;
  stats: StatsSource;
  log: Logger;
  now: () => number;
}

type Topic = 'fleet' | 'runs' | 'run' | 'logs' | 'stats';
const TOPICS: readonly Topic[] = ['fleet', 'runs', 'run', 'logs', 'stats'];

class BadRequest extends Error {
  override name = 'BadRequest';
}

export class FeedConnection {
  private readonly out: Outbox;
  private token = '';
  private record: TokenRecord | undefined;
  private authTimer: NodeJS.Timeout | undefined;
  private recheckTimer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private inFlight = 0;
  private closed = false;
  private subs = new Map<Topic, () => void>();
  /** The newest sample time sent per agent, so an `agent` message carries a sample only once. */
  private sentSample = new Map<string, number>();
  private logLines: LogRecord[] = [];

  constructor(
    private readonly ws: WebSocket,
    private readonly peer: string,
    private readonly d: FeedDeps,
  ) {
    this.out = new Outbox(ws, (buffered) => {
      d.log.warn({ peer, buffered }, 'dashboard client too slow: its socket holds more than 4 MiB; closing it');
      ws.close(CLOSE_TOO_SLOW, 'too slow: reconnect for a fresh snapshot');
      setTimeout(() => ws.terminate(), 1000).unref();
      this.close();
    }, (err) => d.log.error({ err, peer }, 'a dashboard feed change could not be sent'));
    this.authTimer = setTimeout(() => {
      this.error('UNAUTHENTICATED', `no auth message within ${AUTH_TIMEOUT_MS / 1000} s`, "send {type:'auth', token} first");
      ws.close(CLOSE_UNAUTHENTICATED, 'unauthenticated');
    }, AUTH_TIMEOUT_MS);
    ws.on('message', (data, isBinary) => this.receive(data as Buffer | Buffer[], isBinary));
    ws.on('close', () => this.close());
    ws.on('error', () => this.close());
  }

  private receive(data: Buffer | Buffer[], isBinary: boolean) {
    if (this.closed) return;
    if (this.inFlight >= MAX_IN_FLIGHT) return this.error('BAD_REQUEST', `more than ${MAX_IN_FLIGHT} messages waiting; this one was dropped`);
    this.inFlight++;
    // Parsed in turn too, so every answer (an error included) comes in the order of the messages.
    this.chain = this.chain
      .then(() => this.handle(parse(Array.isArray(data) ? Buffer.concat(data) : data, isBinary)))
      .catch((err: unknown) => {
        if (err instanceof BadRequest) return this.error('BAD_REQUEST', err.message);
        if (err instanceof ApiError) return this.error(err.code, err.message, err.hint);
        this.d.log.error({ err, peer: this.peer }, 'dashboard feed message failed');
        this.error('INTERNAL', (err as Error).message);
      })
      .finally(() => this.inFlight--);
  }

  private async handle(msg: Record<string, unknown>) {
    if (this.closed) return;
    if (!this.record) {
      if (msg.type !== 'auth') {
        this.error('UNAUTHENTICATED', "the first message must be {type:'auth', token}");
        return this.ws.close(CLOSE_UNAUTHENTICATED, 'unauthenticated');
      }
      return this.authenticate(typeof msg.token === 'string' ? msg.token.slice(0, MAX_FIELD) : '');
    }
    switch (msg.type) {
      case 'auth':
        throw new BadRequest('already authenticated; open a new connection for another token');
      case 'subscribe':
        if (!(await this.stillAllowed())) return;
        return this.subscribe(topic(msg), msg);
      case 'unsubscribe':
        return this.unsubscribe(topic(msg));
      case 'cancel':
        return this.cancel(str(msg, 'run', true), str(msg, 'reason', false));
      case 'decide':
        if (typeof msg.approve !== 'boolean') throw new BadRequest('"approve" must be true or false');
        return this.decide(str(msg, 'run', true), str(msg, 'step', true), msg.approve, str(msg, 'reason', false));
      default:
        throw new BadRequest(`unknown message type "${String(msg.type).slice(0, 40)}" (auth, subscribe, unsubscribe, cancel, decide)`);
    }
  }

  private async authenticate(token: string) {
    const verdict = await this.d.auth.check(token, 'viewer', this.peer, 'HTTP/ws');
    if (this.closed) return;
    if (!verdict.ok) {
      this.error(verdict.code, verdict.message, verdict.hint);
      return this.ws.close(CLOSE_UNAUTHENTICATED, 'unauthenticated');
    }
    clearTimeout(this.authTimer);
    this.token = token;
    this.record = verdict.record;
    this.recheckTimer = setInterval(() => void this.stillAllowed(), RECHECK_MS);
    this.recheckTimer.unref();
    const rec = verdict.record;
    // tokenId and tokenName let the page show Approve/Reject to approvers only (the server checks again on each decision).
    this.out.send({ type: 'hello', name: rec.name || rec.description || `token ${rec.id}`, role: rec.role as Role, tokenId: rec.id, tokenName: rec.name ?? '' });
  }

  /** Whether the connection's token still allows a viewer; a refused one (revoked, expired) closes the connection with 4401. */
  private async stillAllowed(): Promise<boolean> {
    const verdict = await this.d.auth.check(this.token, 'viewer', this.peer, 'HTTP/ws');
    if (this.closed) return false;
    if (verdict.ok) return true;
    this.error(verdict.code, verdict.message, verdict.hint);
    this.ws.close(CLOSE_UNAUTHENTICATED, 'unauthenticated');
    this.close();
    return false;
  }

  private subscribe(t: Topic, msg: Record<string, unknown>) {
    switch (t) {
      case 'fleet':
        return this.subscribeFleet();
      case 'runs':
        return this.subscribeRuns();
      case 'run':
        return this.subscribeRun(str(msg, 'id', true));
      case 'logs':
        return this.subscribeLogs(str(msg, 'run', true), str(msg, 'step', false));
      case 'stats':
        return this.subscribeStats(msg.windowMs);
    }
  }

  private replace(t: Topic, off: () => void) {
    this.unsubscribe(t);
    this.subs.set(t, off);
  }

  private unsubscribe(t: Topic) {
    this.subs.get(t)?.();
    this.subs.delete(t);
    this.out.drop(`${t}:`);
    if (t === 'logs') this.logLines = [];
  }

  private subscribeFleet() {
    const { fleet, devices, history } = this.d;
    const snapshot = history.all();
    for (const [name, samples] of Object.entries(snapshot)) this.sentSample.set(name, samples[samples.length - 1]?.t ?? 0);
    this.replace(
      'fleet',
      fleet.changes.subscribe((a) => {
        const name = a.record.name;
        this.out.queue(`fleet:${name}`, () => {
          const live = fleet.get(name);
          if (!live) return undefined;
          const s = history.last(name);
          const fresh = s && s.t > (this.sentSample.get(name) ?? 0);
          if (fresh) this.sentSample.set(name, s.t);
          return { type: 'agent', agent: toAgentInfo(live), ...(fresh ? { sample: s } : {}) };
        });
      }),
    );
    this.out.send({
      type: 'fleet',
      agents: fleet.list().map(toAgentInfo),
      devices: devices.list().map((dev) => toDeviceInfo(dev, devices.proxies(dev.network))),
      history: snapshot,
    });
  }

  private subscribeRuns() {
    this.replace(
      'runs',
      this.d.runs.topics.all.subscribe((c) => this.out.queue(`runs:${c.run.id}`, () => ({ type: 'runSummary', run: toRunSummary(c.run) }))),
    );
    this.out.send({ type: 'runs', runs: this.d.runs.list({ limit: RUNS_LISTED }).map(toRunSummary) });
  }

  private subscribeRun(asked: string) {
    const run = this.d.runs.get(asked);
    const id = run.id; // the caller may have given a unique prefix
    this.replace(
      'run',
      this.d.runs.topics.subscribe(id, (c) => {
        if (c.type === 'run') this.out.queue('run:detail', () => ({ type: 'runDetail', run: toRunInfo(c.run, this.d.runs.waitingView()) }));
        else if (c.type === 'step') this.out.queue(`run:step:${c.step.id}`, () => ({ type: 'step', runId: id, step: toStepInfo(c.run, c.step, this.d.runs.waitingView()) }));
      }),
    );
    this.out.send({ type: 'runDetail', run: toRunInfo(run, this.d.runs.waitingView()) });
  }

  /**
   * Stored lines, then live ones, with no gap and no repeat: the store is
   * read to its end and the run's topic subscribed in the same tick, and a
   * line is published only once it is stored.
   */
  private subscribeLogs(asked: string, step: string) {
    const { runs, store } = this.d;
    const runId = runs.get(asked).id; // the caller may have given a unique prefix
    this.unsubscribe('logs');
    const past: LogRecord[] = [];
    for (let from = 0; ; ) {
      const page = store.readLogPage(runId, { from, filter: { step: step || undefined } });
      past.push(...page.records);
      if (past.length > LOG_LINES_FIRST) past.splice(0, past.length - LOG_LINES_FIRST);
      if (page.next >= page.size || page.next === from) break;
      from = page.next;
    }
    const lines = (records: LogRecord[]) => {
      const run = store.getRun(runId);
      return records.map((r) => toLogLine(runId, r, run?.steps[r.step]));
    };
    const render = () => {
      const batch = this.logLines.splice(0, LOG_LINES_PER_MESSAGE);
      if (this.logLines.length) this.out.queue('logs:live', render);
      return batch.length ? { type: 'logs', run: runId, step, lines: lines(batch) } : undefined;
    };
    this.subs.set(
      'logs',
      runs.topics.subscribe(runId, (c) => {
        // A notice that names no step (an unreadable record) is shown whatever step was asked for.
        if (c.type !== 'log' || (step && c.log.step && c.log.step !== step)) return;
        this.logLines.push(c.log);
        if (this.logLines.length > MAX_PENDING_LOG_LINES) {
          const dropped = this.logLines.splice(0, this.logLines.length - MAX_PENDING_LOG_LINES).length;
          this.logLines.unshift({ ...c.log, step: '', stream: 'stderr', text: `[drover: ${dropped} log lines skipped: this page could not keep up]` });
        }
        this.out.queue('logs:live', render);
      }),
    );
    this.out.send({ type: 'logs', run: runId, step, lines: lines(past) });
  }

  private subscribeStats(windowMs: unknown) {
    const stats = this.d.stats;
    if (windowMs !== undefined && (typeof windowMs !== 'number' || !Number.isInteger(windowMs) || windowMs < 0)) throw new BadRequest('windowMs must be a whole number of milliseconds');
    const get = () => ({ type: 'stats', stats: stats.get({ windowMs: (windowMs as number | undefined) ?? 0 }) });
    // Computed before subscribing: a window the service refuses is an error now, never in a timer later.
    const first = get();
    let last = this.d.now();
    let timer: NodeJS.Timeout | undefined;
    const push = () => {
      timer = undefined;
      last = this.d.now();
      try {
        this.out.send(get());
      } catch (err) {
        this.d.log.error({ err, peer: this.peer }, 'stats for the dashboard failed');
        this.error(err instanceof ApiError ? err.code : 'INTERNAL', (err as Error).message);
      }
    };
    const off = this.d.runs.ended.subscribe(() => {
      if (timer) return;
      timer = setTimeout(push, Math.max(0, last + STATS_EVERY_MS - this.d.now()));
    });
    this.replace('stats', () => {
      off();
      clearTimeout(timer);
    });
    this.out.send(first);
  }

  /** Cancels a run for an operator token, recorded in the audit trail as RunService/CancelRun is. */
  private async cancel(asked: string, reason: string) {
    const action = 'RunService/CancelRun';
    let runId = asked; // the whole id when a unique prefix was given, for the audit trail
    try {
      runId = this.d.runs.get(asked).id;
    } catch {
      // Runs.cancel below refuses it with the reason
    }
    const verdict = await this.d.auth.check(this.token, 'operator', this.peer, action, runId);
    if (!verdict.ok) return this.error(verdict.code, verdict.message, verdict.hint);
    const actor = { kind: 'token' as const, id: verdict.record.id };
    try {
      const run = await this.d.runs.cancel(runId, reason);
      this.d.audit?.record({ actor, action, target: runId, from: this.peer, result: 'ok', detail: { id: run.id } });
      this.out.send({ type: 'cancelled', run: toRunInfo(run) });
    } catch (err) {
      this.d.audit?.record({ actor, action, target: runId, from: this.peer, result: err instanceof ApiError ? err.code : 'INTERNAL' });
      throw err;
    }
  }

  /**
   * Decides an approval gate: any valid token may ask, Runs.decideApproval
   * checks it is an approver. Audited as RunService/DecideApproval is.
   */
  private async decide(asked: string, stepId: string, approve: boolean, reason: string) {
    const action = 'RunService/DecideApproval';
    let runId = asked;
    try {
      runId = this.d.runs.get(asked).id;
    } catch {
      // Runs.decideApproval below refuses it with the reason
    }
    const target = `${runId}/${stepId}`;
    const verdict = await this.d.auth.check(this.token, 'viewer', this.peer, action, target);
    if (!verdict.ok) return this.error(verdict.code, verdict.message, verdict.hint);
    const actor = { kind: 'token' as const, id: verdict.record.id };
    const detail = { decision: approve ? 'approve' : 'reject', ...(reason ? { reason: reason.slice(0, 1000) } : {}) };
    try {
      const run = await this.d.runs.decideApproval(runId, stepId, approve, reason.trim(), approverOfRecord(verdict.record));
      this.d.audit?.record({ actor, action, target, from: this.peer, result: 'ok', detail: { ...detail, id: run.id } });
      this.out.send({ type: 'decided', run: toRunInfo(run), step: stepId });
    } catch (err) {
      this.d.audit?.record({ actor, action, target, from: this.peer, result: err instanceof ApiError ? err.code : 'INTERNAL', detail });
      throw err;
    }
  }

  private error(code: string, message: string, hint = '') {
    this.out.send({ type: 'error', code, message, ...(hint ? { hint } : {}) });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.authTimer);
    clearInterval(this.recheckTimer);
    for (const off of this.subs.values()) off();
    this.subs.clear();
    this.out.close();
  }
}

/** A client message: a JSON object with a string `type`, at most MAX_MESSAGE_BYTES. */
function parse(buf: Buffer, isBinary: boolean): Record<string, unknown> {
  if (isBinary) throw new BadRequest('binary messages are not part of the protocol; send JSON text');
  if (buf.length > MAX_MESSAGE_BYTES) throw new BadRequest(`message of ${buf.length} bytes is over the ${MAX_MESSAGE_BYTES / 1024} KiB limit`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw new BadRequest(`not JSON: ${(err as Error).message}`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed) || typeof (parsed as { type?: unknown }).type !== 'string') {
    throw new BadRequest('a message is a JSON object with a string "type"');
  }
  return parsed as Record<string, unknown>;
}

function str(msg: Record<string, unknown>, field: string, required: boolean): string {
  const v = msg[field];
  if (v === undefined && !required) return '';
  if (typeof v !== 'string' || (required && !v)) throw new BadRequest(`"${field}" must be a${required ? ' non-empty' : ''} string`);
  if (v.length > MAX_FIELD) throw new BadRequest(`"${field}" is longer than ${MAX_FIELD} characters`);
  return v;
}

function topic(msg: Record<string, unknown>): Topic {
  const t = msg.topic;
  if (typeof t !== 'string' || !TOPICS.includes(t as Topic)) throw new BadRequest(`"topic" must be one of ${TOPICS.join(', ')}`);
  return t as Topic;
}
