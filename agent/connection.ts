/**
 * Keeps the agent linked to its control plane: Hello on every (re)connect,
 * resend of the unacknowledged tail after Welcome, heartbeats, and reconnect
 * with exponential backoff and full jitter (so a fleet returning at once
 * spreads out instead of stampeding the control plane).
 */
import { randomUUID } from 'node:crypto';
import type { Facts, ServerMessageOut } from '../proto/index.js';
import type { AgentLink, LinkSession } from './link/link.js';
import type { Logger } from './log.js';
import type { Journal } from './journal.js';
import type { Runtime } from './runtime.js';
import type { Usage } from './telemetry.js';

/**
 * Reconnect delays are drawn uniformly from [0, ceiling] ("full jitter"); the
 * ceiling starts at RECONNECT_BASE_MS and doubles per failed attempt up to
 * RECONNECT_MAX_MS, so a fleet that lost its control plane returns spread out.
 */
const RECONNECT_BASE_MS = 100;
const RECONNECT_MAX_MS = 5_000;
/** A link must answer Hello within this or it is dropped and retried. */
const WELCOME_TIMEOUT_MS = 10_000;

export interface ConnectionOptions {
  name: string;
  labels: Record<string, string>;
  token: string;
  instanceId: string;
  facts: Facts;
  link: AgentLink;
  journal: Journal;
  runtime: Runtime;
  usage: Usage;
  log: Logger;
  /** Called when the control plane refuses this agent (exit: retrying will not help). */
  onReject(code: string, message: string): void;
}

export class Connection {
  private session: LinkSession | undefined;
  private failures = 0;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private welcomeTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly bootId = randomUUID();
  connected = false;

  constructor(private readonly o: ConnectionOptions) {}

  start() {
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.teardown();
    this.session?.close();
  }

  private open() {
    if (this.stopped) return;
    const { o } = this;
    const session = o.link.open({
      onMessage: (m) => this.onMessage(session, m),
      onClose: (reason) => this.onClose(session, reason),
    });
    this.session = session;
    session.send({
      seq: 0,
      hello: {
        name: o.name,
        labels: o.labels,
        facts: o.facts,
        lastAckedSeq: o.journal.lastAcked,
        runningAttempts: o.runtime.runningAttempts(),
        bootId: this.bootId,
        token: o.token,
        instanceId: o.instanceId,
      },
    });
    this.welcomeTimer = setTimeout(() => {
      o.log.warn({ server: o.link.address }, 'no Welcome from the control plane; reconnecting');
      session.close();
    }, WELCOME_TIMEOUT_MS);
  }

  private onMessage(session: LinkSession, m: ServerMessageOut) {
    const { o } = this;
    switch (m.body) {
      case 'welcome': {
        clearTimeout(this.welcomeTimer);
        this.failures = 0;
        this.connected = true;
        o.log.info({ server: o.link.address, appliedSeq: m.welcome!.appliedSeq, resending: o.journal.unacked }, 'connected');
        o.journal.attach((msg) => session.send(msg), m.welcome!.appliedSeq);
        const every = m.welcome!.heartbeatIntervalMs || 5000;
        void this.beat(session);
        this.heartbeatTimer = setInterval(() => void this.beat(session), every);
        return;
      }
      case 'ack':
        return o.journal.ack(m.ack!.seq);
      case 'assign':
        return o.runtime.assign(m.assign!);
      case 'release':
        return o.runtime.release(m.release!);
      case 'cancel':
        return o.runtime.cancel(m.cancel!);
      case 'drain':
        return o.log.info({ draining: m.drain!.enabled }, m.drain!.enabled ? 'draining: no new work will be placed here; running steps finish' : 'drain ended');
      case 'reject':
        o.log.error({ code: m.reject!.code }, m.reject!.message);
        this.stop();
        return o.onReject(m.reject!.code, m.reject!.message);
      default:
        o.log.debug({ body: m.body }, 'message ignored');
    }
  }

  private async beat(session: LinkSession) {
    try {
      const hb = await this.o.usage.sample(this.o.runtime.running);
      if (this.session === session && this.connected) session.send({ seq: 0, heartbeat: hb });
    } catch (err) {
      this.o.log.warn({ err }, 'cannot read usage for the heartbeat');
    }
  }

  private onClose(session: LinkSession, reason: string) {
    if (this.session !== session) return;
    const wasConnected = this.connected;
    this.teardown();
    if (this.stopped) return;
    this.failures++;
    const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** Math.min(this.failures, 16));
    const delay = Math.round(Math.random() * ceiling);
    const log = wasConnected || this.failures === 1 ? this.o.log.warn.bind(this.o.log) : this.o.log.debug.bind(this.o.log);
    log({ server: this.o.link.address, reason, retryInMs: delay, buffered: this.o.journal.unacked }, 'link down; will reconnect');
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  private teardown() {
    this.connected = false;
    clearTimeout(this.welcomeTimer);
    clearInterval(this.heartbeatTimer);
    this.o.journal.detach();
    this.session = undefined;
  }
}
