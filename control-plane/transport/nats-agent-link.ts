/**
 * The agent link over NATS (docs/nats.md). Core NATS has no per-connection
 * stream, so this file keeps what a gRPC stream gives for free:
 *
 * - A session starts with a Hello on `drover.v1.agent.<name>.up` carrying a
 *   fresh `Drover-Session` header; any later Hello from that agent replaces it
 *   (the handler tells the old one REPLACED, as over gRPC; then it ends and
 *   its AgentConnection gets handler.onClose).
 * - Every message carries `Drover-Seq` (1, 2, 3, ... per session and
 *   direction). A gap means core NATS dropped a message: the session ends, the
 *   agent says Hello again and the delivery rules (replay after Welcome,
 *   slices re-sent after Hello) recover what was lost.
 * - A session with no message for IDLE_HEARTBEATS heartbeat intervals ends.
 * - A message for a session this process does not know (it restarted, or
 *   ended the session) is answered with a close signal, so the agent says
 *   Hello again instead of talking into the void.
 *
 * The NATS connection is built by main.ts and injected.
 */
import { headers, type Msg, type NatsConnection, type Subscription } from '@nats-io/nats-core';
import { decodeMessage, encodeMessage, type AgentMessageOut, type ServerMessage } from '../../proto/index.js';
import { agentOfUpSubject, downSubject, MAX_AGENT_MESSAGE_BYTES, NATS_AGENT_WILDCARD, NATS_HEADER, upSubject } from '../../proto/nats.js';
import { PeerLog, type Logger } from '../log.js';
import type { AgentConnection, AgentLinkHandler } from './agent-link.js';

/** A session ends after this many heartbeat intervals without any message from the agent. */
export const IDLE_HEARTBEATS = 3;
/** A stale session id is told to say Hello again at most once per this period (stops a flood of close signals). */
const REFUSAL_REPEAT_MS = 1000;
/** Agent names as AgentSessions accepts them, and only those: a subject token is never empty. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$/;

export interface NatsAgentLinkOptions {
  /** The interval agents are told in Welcome; sets the idle timeout. */
  heartbeatIntervalMs: number;
  log: Logger;
}

interface Session {
  name: string;
  sid: string;
  conn: AgentConnection;
  open: boolean;
  /** Last Drover-Seq sent to the agent. */
  sent: number;
  /** Last Drover-Seq received from the agent. */
  received: number;
  idle: NodeJS.Timeout;
}

/** Serves every NATS agent through one subscription; hands each session to the handler as an AgentConnection. */
export class NatsAgentLink {
  private sessions = new Map<string, Session>();
  private refusals = new Map<string, { sid: string; atMs: number }>();
  private sub: Subscription | undefined;
  private readonly idleMs: number;
  /** Lines a subject's traffic causes, limited per agent name. */
  private readonly peerLog: PeerLog;

  constructor(
    private readonly nc: NatsConnection,
    private readonly handler: AgentLinkHandler,
    private readonly opts: NatsAgentLinkOptions,
  ) {
    this.idleMs = opts.heartbeatIntervalMs * IDLE_HEARTBEATS;
    this.peerLog = new PeerLog(opts.log);
  }

  /** Subscribes to every agent's up subject; resolves once the server has the subscription. */
  async start(): Promise<void> {
    this.sub = this.nc.subscribe(NATS_AGENT_WILDCARD, {
      callback: (err, msg) => {
        if (err) return this.opts.log.error({ err }, 'NATS subscription for agents failed; NATS agents cannot reach this control plane');
        try {
          this.receive(msg);
        } catch (e) {
          this.opts.log.error({ err: e, subject: msg.subject }, 'agent message over NATS could not be handled');
        }
      },
    });
    await this.nc.flush();
  }

  /** Stops listening. Sessions are not ended: after a restart, agents learn it from the close signal. */
  stop(): void {
    this.sub?.unsubscribe();
    for (const s of this.sessions.values()) clearTimeout(s.idle);
    this.sessions.clear();
  }

  private receive(msg: Msg) {
    const name = agentOfUpSubject(msg.subject);
    if (!name) return; // down subjects (this process's own traffic when echo is on) and strangers
    // Read once: msg.data is a getter that makes a new view on every read.
    const data = msg.data;
    const log = this.peerLog;
    const sid = msg.headers?.get(NATS_HEADER.session) ?? '';
    const seq = Number(msg.headers?.get(NATS_HEADER.seq) ?? '');
    if (!NAME.test(name)) {
      log.warn('invalid-subject', { subject: msg.subject }, 'NATS message dropped: the subject does not name a valid agent');
      return;
    }
    if (!sid || !Number.isSafeInteger(seq) || seq < 1) {
      log.warn(name, { subject: msg.subject, bytes: data.length }, 'NATS message dropped: no Drover-Session/Drover-Seq headers (see docs/nats.md)');
      return;
    }
    const current = this.sessions.get(name);
    const inSession = current?.sid === sid ? current : undefined;
    if (data.length > MAX_AGENT_MESSAGE_BYTES) {
      // Counted in the session, so a refused message does not look like a lost one.
      if (inSession) this.advance(inSession, seq);
      log.warn(
        name,
        { agent: name, subject: msg.subject, bytes: data.length, limit: MAX_AGENT_MESSAGE_BYTES },
        `agent message dropped: ${data.length} bytes is over the ${MAX_AGENT_MESSAGE_BYTES}-byte limit for one message`,
      );
      return;
    }
    let decoded: AgentMessageOut;
    try {
      decoded = decodeMessage<AgentMessageOut>('AgentMessage', data);
    } catch (err) {
      if (inSession) this.advance(inSession, seq);
      log.warn(name, { agent: name, subject: msg.subject, bytes: data.length, err: (err as Error).message }, 'agent message dropped: not a drover.v1.AgentMessage');
      return;
    }
    if (decoded.body === 'hello' && decoded.hello) return this.hello(name, sid, seq, decoded);
    if (!inSession) {
      return this.refuse(name, sid, 'unknown session (the control plane restarted, or ended it earlier); say Hello again');
    }
    if (!this.advance(inSession, seq)) return;
    this.handler.onMessage(inSession.conn, decoded);
  }

  private hello(name: string, sid: string, seq: number, msg: AgentMessageOut) {
    const hello = msg.hello!;
    if (hello.name !== name) {
      // Identity over NATS is the subject an agent may publish on: no speaking for another agent.
      this.peerLog.warn(name, { subject: upSubject(name), claimed: hello.name }, 'Hello refused: the name does not match the subject');
      this.publish(name, sid, encodeMessage('ServerMessage', {
        reject: {
          code: 'BAD_NAME',
          message: `Hello names agent "${hello.name}" but came on ${upSubject(name)}; an agent publishes only on its own subject`,
        },
      }), 1);
      return;
    }
    const old = this.sessions.get(name);
    if (old?.sid === sid) return; // a repeated Hello of the same session changes nothing
    this.refusals.delete(name);
    let session: Session;
    const conn: AgentConnection = {
      transport: 'nats',
      peer: `${upSubject(name)}@${this.nc.getServer()}`,
      // Only the agent's NATS user may publish on its up subject (drover server nats-config).
      identity: { name, serial: '', notAfterMs: 0 },
      send: (m: ServerMessage) => this.send(session, m),
      close: (reason?: string) => this.end(session, reason ?? 'closed by the control plane'),
    };
    session = {
      name,
      sid,
      conn,
      open: true,
      sent: 0,
      received: seq,
      idle: setTimeout(() => this.end(session, `no message from the agent for ${IDLE_HEARTBEATS} heartbeat intervals (${this.idleMs} ms)`), this.idleMs),
    };
    this.sessions.set(name, session);
    // The handler replaces the old session as on any transport (Reject{REPLACED} on it, then close: fleet.ts); a Hello it refused ends it here.
    this.handler.onMessage(conn, msg);
    if (old) this.end(old, 'replaced by a newer Hello from this agent');
  }

  /** Accepts the next Drover-Seq of a session; ends the session on a gap. */
  private advance(s: Session, seq: number): boolean {
    s.idle.refresh();
    if (seq === s.received + 1) {
      s.received = seq;
      return true;
    }
    if (seq <= s.received) return false;
    this.peerLog.warn(s.name, { agent: s.name, expected: s.received + 1, got: seq }, 'agent message lost in transit; ending the session so the agent resends');
    this.end(s, `message lost in transit (expected #${s.received + 1}, got #${seq}); say Hello again`);
    return false;
  }

  private send(s: Session, m: ServerMessage) {
    if (!s.open) return;
    let data: Uint8Array;
    try {
      data = encodeMessage('ServerMessage', m);
    } catch (err) {
      this.opts.log.error({ agent: s.name, body: bodyOf(m), err: (err as Error).message }, 'message to the agent dropped: cannot encode it');
      return;
    }
    if (this.publish(s.name, s.sid, data, s.sent + 1, bodyOf(m))) s.sent++;
  }

  /** Publishes one down message; false (and an error in the log) when NATS refuses it. */
  private publish(name: string, sid: string, data: Uint8Array, seq: number, body = 'reject'): boolean {
    const h = headers();
    h.set(NATS_HEADER.session, sid);
    h.set(NATS_HEADER.seq, String(seq));
    try {
      this.nc.publish(downSubject(name), data, { headers: h });
      return true;
    } catch (err) {
      const max = this.nc.info?.max_payload;
      const tooBig = /max_payload/.test((err as Error).message);
      this.opts.log.error(
        { agent: name, body, bytes: data.length, maxPayload: max, err: (err as Error).message },
        tooBig
          ? `message to the agent dropped: ${data.length} bytes is over the NATS server's max_payload (${max}); raise max_payload in the nats-server configuration`
          : 'message to the agent dropped: NATS refused it',
      );
      return false;
    }
  }

  /** Ends a session: tells the agent (it may be alive and not know) and the handler. */
  private end(s: Session, reason: string) {
    if (!s.open) return;
    s.open = false;
    clearTimeout(s.idle);
    if (this.sessions.get(s.name) === s) this.sessions.delete(s.name);
    this.signalClose(s.name, s.sid, reason);
    this.peerLog.info(s.name, { agent: s.name, reason }, 'NATS session ended');
    // Like a gRPC stream's 'end' event, onClose comes after the current call returns.
    setImmediate(() => this.handler.onClose(s.conn));
  }

  private refuse(name: string, sid: string, reason: string) {
    const last = this.refusals.get(name);
    const now = Date.now();
    if (last && last.sid === sid && now - last.atMs < REFUSAL_REPEAT_MS) return;
    this.refusals.set(name, { sid, atMs: now });
    this.opts.log.debug({ agent: name }, 'message for an unknown NATS session; asking the agent to say Hello again');
    this.signalClose(name, sid, reason);
  }

  private signalClose(name: string, sid: string, reason: string) {
    const h = headers();
    h.set(NATS_HEADER.session, sid);
    h.set(NATS_HEADER.close, reason);
    try {
      this.nc.publish(downSubject(name), new Uint8Array(0), { headers: h });
    } catch (err) {
      this.opts.log.debug({ agent: name, err: (err as Error).message }, 'could not tell the agent its session ended');
    }
  }
}

function bodyOf(m: ServerMessage): string {
  return Object.keys(m).find((k) => k !== 'body' && (m as Record<string, unknown>)[k] != null) ?? 'unknown';
}
