/**
 * Keeps the agent linked to its control plane: Hello on every (re)connect,
 * resend of the unacknowledged tail after Welcome, heartbeats, and reconnect
 * with exponential backoff and full jitter (so a fleet returning at once
 * spreads out instead of stampeding the control plane).
 */
import { randomUUID } from 'node:crypto';
import type { Facts, ServerMessageOut } from '../proto/index.js';
import type { ControlVerifier } from './control.js';
import { newCertificateRequest, saveCertificate, type Identity } from './identity.js';
import type { AgentLink, LinkSession } from './link/link.js';
import type { Logger } from './log.js';
import type { Journal } from './journal.js';
import type { Runtime } from './runtime.js';
import type { Usage } from './telemetry.js';
import { assignIn, cancelIn, releaseIn } from './wire.js';

/**
 * Reconnect delays are drawn uniformly from [0, ceiling] ("full jitter"); the
 * ceiling starts at RECONNECT_BASE_MS and doubles per failed attempt up to
 * RECONNECT_MAX_MS, so a fleet that lost its control plane returns spread out.
 */
const RECONNECT_BASE_MS = 100;
const RECONNECT_MAX_MS = 5_000;
/** Redirects to a leader followed without backing off, in a row (a Welcome resets the count). */
const MAX_QUICK_REDIRECTS = 3;
/** A link must answer Hello within this or it is dropped and retried. */
const WELCOME_TIMEOUT_MS = 10_000;
/** The certificate is renewed once this share of its lifetime has passed (Nomad renews at 67 % too). */
const RENEW_AT = 2 / 3;
/** A renewal that got no answer is asked again after this (or sooner, before expiry). */
const RENEW_RETRY_MS = 60_000;

export interface ConnectionOptions {
  name: string;
  labels: Record<string, string>;
  instanceId: string;
  facts: Facts;
  link: AgentLink;
  journal: Journal;
  runtime: Runtime;
  usage: Usage;
  log: Logger;
  /** Checks control messages; they are acted on only when it says so. */
  verifier: ControlVerifier;
  /** The certificate identity (renewed over the link); undefined with --insecure. */
  identity?: Identity;
  stateDir: string;
  /** A renewed certificate to dial with from now on. */
  onRenewed?(identity: Identity): void;
  /** Called when the control plane refuses this agent (exit: retrying will not help). */
  onReject(code: string, message: string): void;
  /** The clock (ms), for renewal. */
  now?: () => number;
}

export class Connection {
  private session: LinkSession | undefined;
  private failures = 0;
  private redirects = 0;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private welcomeTimer: NodeJS.Timeout | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  /** The key of a renewal asked for and not answered yet. */
  private renewKey: string | undefined;
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
    clearTimeout(this.renewTimer);
    this.o.verifier.flush();
    this.teardown();
    this.session?.close();
  }

  private open() {
    if (this.stopped) return;
    const { o } = this;
    const session = o.link.open({
      onMessage: (m) => this.onMessage(session, m),
      onClose: (reason, refused, soon) => this.onClose(session, reason, refused, soon),
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
        finishedAttempts: o.runtime.finishedAttempts(),
        bootId: this.bootId,
        instanceId: o.instanceId,
      },
    });
    this.welcomeTimer = setTimeout(() => {
      o.log.warn({ server: o.link.address }, 'no Welcome from the control plane; reconnecting');
      session.close();
    }, WELCOME_TIMEOUT_MS);
  }

  private onMessage(session: LinkSession, raw: ServerMessageOut) {
    const { o } = this;
    if (this.session !== session) return; // a late message of a session already replaced
    const verdict = o.verifier.check(raw);
    if (!verdict.ok) {
      o.log.error({ rejected: o.verifier.rejected }, `control message refused, nothing done: ${verdict.why}`);
      return;
    }
    const m = verdict.message;
    switch (m.body) {
      case 'welcome': {
        clearTimeout(this.welcomeTimer);
        this.failures = 0;
        this.redirects = 0;
        this.connected = true;
        o.log.info({ server: o.link.address, appliedSeq: m.welcome!.appliedSeq, resending: o.journal.unacked }, 'connected');
        o.journal.attach((msg) => session.send(msg), m.welcome!.appliedSeq);
        const every = m.welcome!.heartbeatIntervalMs || 5000;
        void this.beat(session);
        this.heartbeatTimer = setInterval(() => void this.beat(session), every);
        this.scheduleRenewal();
        return;
      }
      case 'renewed':
        return this.renewed(session, m.renewed!.certificatePem, m.renewed!.natsJwt);
      case 'ack':
        return o.journal.ack(m.ack!.seq);
      case 'assign':
        return o.runtime.assign(assignIn(m.assign!));
      case 'release': {
        const r = releaseIn(m.release!);
        return r ? o.runtime.release(r) : o.log.debug({ run: m.release!.runId, step: m.release!.stepId }, 'release without a status ignored');
      }
      case 'cancel':
        return o.runtime.cancel(cancelIn(m.cancel!));
      case 'runFinished':
        return o.runtime.runFinished(m.runFinished!.runId);
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
      hb.rejectedControlMessages = this.o.verifier.rejected;
      if (this.session === session && this.connected) session.send({ seq: 0, heartbeat: hb });
    } catch (err) {
      this.o.log.warn({ err }, 'cannot read usage for the heartbeat');
    }
  }

  private onClose(session: LinkSession, reason: string, refused = false, soon = false) {
    if (this.session !== session) return;
    const wasConnected = this.connected;
    this.teardown();
    if (this.stopped) return;
    if (refused) {
      this.stop();
      return this.o.onReject('UNAUTHENTICATED', `the control plane refused this agent's certificate: ${reason}`);
    }
    // Sent to the leader by a standby: at once, unless standbys keep sending it round (an election under way).
    if (soon && this.redirects++ < MAX_QUICK_REDIRECTS) {
      this.o.log.info({ server: this.o.link.address, reason }, 'redirected to the leader; reconnecting');
      this.retryTimer = setTimeout(() => this.open(), Math.round(Math.random() * RECONNECT_BASE_MS));
      return;
    }
    this.failures++;
    const ceiling = Math.min(this.o.link.maxReconnectMs ?? RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** Math.min(this.failures, 16));
    const delay = Math.round(Math.random() * ceiling);
    const log = wasConnected || this.failures === 1 ? this.o.log.warn.bind(this.o.log) : this.o.log.debug.bind(this.o.log);
    log({ server: this.o.link.address, reason, retryInMs: delay, buffered: this.o.journal.unacked }, 'link down; will reconnect');
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  /** Asks for a new certificate at two thirds of the current one's life (now, if that has passed). */
  private scheduleRenewal() {
    const id = this.o.identity;
    if (!id) return;
    clearTimeout(this.renewTimer);
    const now = (this.o.now ?? Date.now)();
    const due = id.notBeforeMs + (id.notAfterMs - id.notBeforeMs) * RENEW_AT;
    const wait = Math.max(0, due - now);
    this.renewTimer = setTimeout(() => void this.askRenewal(), Math.min(wait, 2 ** 31 - 1));
    this.renewTimer.unref?.();
  }

  private async askRenewal() {
    const id = this.o.identity;
    const session = this.session;
    if (!id || !session || !this.connected) return;
    const { keyPem, csrPem } = await newCertificateRequest(id.name);
    this.renewKey = keyPem;
    this.o.log.info({ expires: new Date(id.notAfterMs).toISOString() }, 'asking the control plane for a new certificate');
    session.send({ seq: 0, renew: { csrPem } });
    // No answer (refused, or the link dropped): ask again later, but before the old one runs out.
    const left = id.notAfterMs - (this.o.now ?? Date.now)();
    this.renewTimer = setTimeout(() => void this.askRenewal(), Math.max(1000, Math.min(RENEW_RETRY_MS, left / 4)));
    this.renewTimer.unref?.();
  }

  /** Stores the renewed certificate and reconnects with it. */
  private renewed(session: LinkSession, certPem: string, natsJwt: string) {
    const key = this.renewKey;
    if (!key || !this.o.identity) return;
    try {
      const id = saveCertificate(this.o.stateDir, key, certPem, natsJwt);
      this.renewKey = undefined;
      this.o.identity = id;
      clearTimeout(this.renewTimer);
      this.o.log.info({ expires: new Date(id.notAfterMs).toISOString() }, 'certificate renewed; reconnecting with it');
      this.o.onRenewed?.(id);
      session.close();
    } catch (err) {
      this.o.log.error({ err }, 'cannot store the renewed certificate (disk full?); keeping the current one and asking again later');
    }
  }

  private teardown() {
    this.connected = false;
    clearTimeout(this.welcomeTimer);
    clearInterval(this.heartbeatTimer);
    this.o.journal.detach();
    this.session = undefined;
  }
}
