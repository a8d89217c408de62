/**
 * The control plane's side of the delivery rules (DESIGN.md §5): the first
 * message of a link must be Hello; every sequenced message (seq > 0) is
 * applied once, in order, and acknowledged cumulatively only after the state
 * it changed is on disk. Heartbeats carry seq 0: not journaled, not acked.
 */
import { timingSafeEqual } from 'node:crypto';
import type { AgentMessageOut } from '../proto/index.js';
import type { Fleet } from './fleet.js';
import type { Logger } from './log.js';
import type { Runs } from './runs.js';
import type { Store } from './store/store.js';
import type { AgentConnection, AgentLinkHandler } from './transport/agent-link.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * An ack waits this long before it asks for a durable write, so that the
 * messages arriving meanwhile (from this agent and from others) share one
 * write and one ack. Acks are off every critical path (the agent keeps
 * working; only its journal waits to be trimmed), while a write and an ack
 * per message cost the control plane and the agent CPU that the steps need.
 */
const ACK_DELAY_MS = 10;

function tokenMatches(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

interface Session {
  name: string;
  /** Highest applied seq not yet acknowledged to the agent. */
  ackDue: number;
  acking: boolean;
}

export interface SessionStats {
  applied: number;
  duplicates: number;
}

export class AgentSessions implements AgentLinkHandler {
  private sessions = new Map<AgentConnection, Session>();
  readonly stats: SessionStats = { applied: 0, duplicates: 0 };

  constructor(
    private readonly fleet: Fleet,
    private readonly runs: Runs,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly opts: { heartbeatIntervalMs: number; enrollToken: string },
  ) {}

  onMessage(conn: AgentConnection, msg: AgentMessageOut) {
    const session = this.sessions.get(conn);
    if (!session) {
      if (msg.body !== 'hello' || !msg.hello) {
        conn.send({ reject: { code: 'HELLO_REQUIRED', message: 'the first message on a link must be Hello' } });
        return conn.close();
      }
      return this.hello(conn, msg);
    }
    const agent = session.name;
    if (msg.body === 'heartbeat' && msg.heartbeat) return this.fleet.heartbeat(agent, msg.heartbeat);
    const live = this.fleet.get(agent);
    if (!live || live.conn !== conn) return;
    if (msg.seq <= live.record.appliedSeq) {
      this.stats.duplicates++;
      return this.scheduleAck(conn, session, live.record.appliedSeq);
    }
    if (msg.body === 'stepEvent' && msg.stepEvent) this.runs.applyStepEvent(agent, msg.stepEvent);
    else if (msg.body === 'log' && msg.log) this.runs.applyLog(agent, msg.log, msg.seq);
    else this.log.warn({ agent, body: msg.body }, 'unexpected message ignored');
    live.record.appliedSeq = msg.seq;
    live.record.lastSeenMs = live.heardMs = Date.now();
    this.store.putAgent(live.record);
    this.stats.applied++;
    this.scheduleAck(conn, session, msg.seq);
  }

  onClose(conn: AgentConnection) {
    const session = this.sessions.get(conn);
    if (!session) return;
    this.sessions.delete(conn);
    this.fleet.disconnect(session.name, conn);
    this.log.info({ agent: session.name }, 'agent disconnected');
  }

  private hello(conn: AgentConnection, msg: AgentMessageOut) {
    const hello = msg.hello!;
    if (!NAME.test(hello.name)) {
      conn.send({ reject: { code: 'BAD_NAME', message: `agent name "${hello.name}" is not valid: use letters, digits, ".", "-", "_" (max 63)` } });
      return conn.close();
    }
    if (this.opts.enrollToken && !tokenMatches(hello.token, this.opts.enrollToken)) {
      this.log.warn({ agent: hello.name, peer: conn.peer }, 'agent refused: wrong or missing enrollment token');
      conn.send({ reject: { code: 'BAD_TOKEN', message: 'wrong or missing enrollment token: start the agent with --token (or DROVER_TOKEN) set to the server\'s --enroll-token' } });
      return conn.close();
    }
    const live = this.fleet.connect(conn, hello);
    this.sessions.set(conn, { name: hello.name, ackDue: 0, acking: false });
    conn.send({ welcome: { agentId: hello.name, appliedSeq: live.record.appliedSeq, heartbeatIntervalMs: this.opts.heartbeatIntervalMs } });
    this.log.info({ agent: hello.name, peer: conn.peer, transport: conn.transport, appliedSeq: live.record.appliedSeq }, 'agent connected');
    this.runs.agentConnected(hello.name, hello.runningAttempts);
  }

  /** Acks after the next durable flush; acks requested meanwhile coalesce into one. */
  private scheduleAck(conn: AgentConnection, session: Session, seq: number) {
    session.ackDue = Math.max(session.ackDue, seq);
    if (session.acking) return;
    session.acking = true;
    const flushAndAck = () => setTimeout(flushNow, ACK_DELAY_MS);
    const flushNow = () => {
      const seqNow = session.ackDue;
      this.store.flush().then(
        () => {
          conn.send({ ack: { seq: seqNow } });
          if (session.ackDue > seqNow) flushAndAck();
          else session.acking = false;
        },
        (err: unknown) => {
          session.acking = false;
          this.log.error({ err, agent: session.name }, 'state write failed; messages stay unacknowledged and will be resent');
        },
      );
    };
    flushAndAck();
  }
}
