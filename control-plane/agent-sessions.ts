/**
 * The control plane's side of the delivery rules (DESIGN.md §5): the first
 * message of a link must be Hello; every sequenced message (seq > 0) is
 * applied once, in order, and acknowledged cumulatively only after the state
 * it changed is on disk. Heartbeats carry seq 0: not journaled, not acked.
 *
 * And of identity (DESIGN.md §7): an agent speaks only for itself. Its name
 * is the one its transport proved (certificate or NATS subject); a Hello
 * naming anyone else is refused. Control messages to the agent are signed.
 *
 * And of the protocol's rules (docs/protocol.md, checked by link-rules.ts):
 * a seq gap, an event out of order for its attempt or an attempt number or
 * id the rules do not allow is answered with Reject{code, rule, seq}, counted,
 * and the link closed; nothing of it is applied or acknowledged. When a run
 * ends, its agents are told (RunFinished), so they may forget its attempts.
 *
 * And of bounds (proto/limits.ts), checked here for both transports before
 * anything is applied: a Hello over a bound is refused; a heartbeat over one
 * is dropped; a sequenced message over one is acknowledged without being
 * applied (so the agent's journal moves on) and nothing of it is stored.
 *
 * And of a failing disk: an ack waits for the store's write however long it
 * keeps failing (the store retries by itself), `Welcome.appliedSeq` is the
 * last seq acknowledged, never one applied but not yet on disk (the agent
 * drops its journal up to it), and while the log records waiting for the
 * disk are past their bound, a link that brings a new message is closed:
 * the agent keeps it in its journal and resends it after reconnecting.
 */
import { AGENT_NAME } from '../common/names.js';
import type { AgentMessageOut, ServerMessage } from '../proto/index.js';
import { checkMessage } from '../proto/limits.js';
import type { Fleet } from './fleet.js';
import { checkSeq, checkStepEvent, type Violation, type ViolationCode } from './link-rules.js';
import { LogIntake } from './log-intake.js';
import { TERMINAL_RUN } from './model/run.js';
import { PeerLog, type Logger } from './log.js';
import type { Runs } from './runs.js';
import type { Credentials } from './security/credentials.js';
import type { AuditLog } from './security/audit.js';
import { isControl, type ControlSigner } from './security/signer.js';
import type { CredentialRecord, Store } from './store/store.js';
import type { AgentConnection, AgentLinkHandler } from './transport/agent-link.js';
import { fromStepEvent } from './wire.js';

/**
 * An ack waits this long before it asks for a durable write, so that the
 * messages arriving meanwhile (from this agent and from others) share one
 * write and one ack. Acks are off every critical path (the agent keeps
 * working; only its journal waits to be trimmed), while a write and an ack
 * per message cost the control plane and the agent CPU that the steps need.
 */
const ACK_DELAY_MS = 10;

interface Session {
  name: string;
  /** What the fleet holds as the agent's link: `conn` with control messages signed. */
  out: AgentConnection;
  /** Highest applied seq not yet acknowledged to the agent. */
  ackDue: number;
  acking: boolean;
  /** The agent's state-dir identity: its sequence space. */
  instanceId: string;
}

export interface SessionStats {
  applied: number;
  duplicates: number;
  /** Messages over a bound of proto/limits.ts, never applied. */
  refusedMessages: number;
  /** Messages refused for breaking a rule of docs/protocol.md, by Reject code. */
  violations: Partial<Record<ViolationCode, number>>;
}

export class AgentSessions implements AgentLinkHandler {
  private sessions = new Map<AgentConnection, Session>();
  /** Per agent, the highest seq acknowledged (so on disk), in the sequence space of its instance. */
  private acked = new Map<string, { instanceId: string; seq: number }>();
  readonly stats: SessionStats = { applied: 0, duplicates: 0, refusedMessages: 0, violations: {} };
  private peerLog: PeerLog;
  /** Log chunks: recognised when stored before a restart, cut into lines. */
  private logs: LogIntake;

  constructor(
    private readonly fleet: Fleet,
    private readonly runs: Runs,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly opts: {
      heartbeatIntervalMs: number;
      signer: ControlSigner;
      credentials: Credentials;
      now: () => number;
      /** The NATS user JWT of a credential ('' for an agent that does not link over NATS). */
      natsJwt(credential: CredentialRecord): Promise<string>;
      /** Certificate renewals are recorded here. */
      audit?: AuditLog;
      /** A replicated control plane: false once this replica's leader lease ran out; nothing more is sent to agents then. */
      mayAct?: () => boolean;
    },
  ) {
    this.peerLog = new PeerLog(log, opts.now);
    this.logs = new LogIntake(store, (id) => runs.isActive(id));
    runs.ended.subscribe((run) => {
      this.logs.forget(run.id);
      if (TERMINAL_RUN.has(run.status)) this.runFinished(run);
    });
  }

  onMessage(conn: AgentConnection, msg: AgentMessageOut) {
    const session = this.sessions.get(conn);
    const bad = checkMessage('AgentMessage', msg);
    if (!session) {
      if (msg.body !== 'hello' || !msg.hello) {
        conn.send({ reject: { code: 'HELLO_REQUIRED', message: 'the first message on a link must be Hello' } });
        return conn.close();
      }
      if (bad) {
        this.stats.refusedMessages++;
        this.peerLog.warn(conn.peer, { peer: conn.peer, field: bad.field, problem: bad.message }, 'Hello refused: over a bound');
        conn.send({ reject: { code: 'INVALID_MESSAGE', message: `Hello refused: ${bad.message} (docs/security.md lists the limits)` } });
        return conn.close();
      }
      return this.hello(conn, msg);
    }
    const agent = session.name;
    if (bad) {
      this.stats.refusedMessages++;
      this.peerLog.warn(agent, { agent, seq: msg.seq, body: msg.body, field: bad.field, problem: bad.message }, 'agent message refused: over a bound; nothing of it is applied');
      // Only a sequenced body with a well-formed seq is acknowledged past; any other bad message is dropped as it is.
      if (msg.body !== 'stepEvent' && msg.body !== 'log') return;
      if (!Number.isSafeInteger(msg.seq) || msg.seq <= 0) return;
    }
    if (msg.body === 'heartbeat' && msg.heartbeat) return this.fleet.heartbeat(agent, msg.heartbeat);
    const live = this.fleet.get(agent);
    if (!live || live.conn !== session.out) return;
    if (msg.body === 'renew' && msg.renew) return void this.renew(conn, session, msg.renew.csrPem);
    const sequenced = msg.body === 'stepEvent' || msg.body === 'log';
    if (!sequenced && msg.seq === 0) return this.peerLog.warn(agent, { agent, body: msg.body }, 'unexpected message ignored');
    const verdict = checkSeq(live.record.appliedSeq, msg.seq);
    if (verdict === 'duplicate') {
      this.stats.duplicates++;
      return this.scheduleAck(conn, session, live.record.appliedSeq);
    }
    // Never applied, never acked: the agent's real messages after it still count.
    if (verdict !== 'apply') return this.violation(conn, agent, msg.seq, verdict);
    if (!bad && msg.body === 'stepEvent' && msg.stepEvent) {
      const ev = msg.stepEvent;
      const report = fromStepEvent(ev);
      const broken = report && checkStepEvent(agent, report, ev.attemptId, this.store.getRun(ev.runId)?.steps[ev.stepId]);
      if (broken) return this.violation(conn, agent, msg.seq, broken);
    }
    if (this.store.logBacklogFull()) {
      this.peerLog.warn(agent, { agent, seq: msg.seq }, 'log records waiting for the disk are past their bound; closing the link: the agent keeps its messages and resends them');
      return conn.close('the control plane cannot write its data dir; resend later');
    }
    if (bad) {
      // acknowledged below so that the agent's journal moves past it
    } else if (msg.body === 'stepEvent' && msg.stepEvent) this.runs.applyStepEvent(agent, msg.stepEvent);
    else if (msg.body === 'log' && msg.log) {
      if (this.logs.duplicate(agent, msg.log, msg.seq)) {
        this.stats.duplicates++;
        this.peerLog.info(agent, { agent, run: msg.log.runId, seq: msg.seq }, 'log chunk already stored before a restart; skipped');
      } else this.runs.applyLog(agent, this.logs.lines(msg.log, msg.seq));
    } else this.peerLog.warn(agent, { agent, body: msg.body }, 'unexpected message ignored');
    live.record.appliedSeq = msg.seq;
    live.record.lastSeenMs = live.heardMs = Date.now();
    this.store.putAgent(live.record);
    this.stats.applied++;
    this.scheduleAck(conn, session, msg.seq);
  }

  /** Refuses a message that breaks a rule of docs/protocol.md: Reject naming it, then the link closes. */
  private violation(conn: AgentConnection, agent: string, seq: number, v: Violation) {
    this.stats.violations[v.code] = (this.stats.violations[v.code] ?? 0) + 1;
    this.peerLog.warn(agent, { agent, seq, code: v.code, rule: v.rule, problem: v.message }, `agent message refused, nothing of it applied: it breaks rule ${v.rule} of docs/protocol.md; closing the link`);
    conn.send({ reject: { code: v.code, rule: v.rule, seq, message: `message ${seq} refused: ${v.message} (docs/protocol.md, rule ${v.rule})` } });
    conn.close(`protocol violation: ${v.rule}`);
  }

  /** Tells every agent that had a step of `run` that it ended (those not connected learn it from their next Hello). */
  private runFinished(run: { id: string; steps: Record<string, { agent: string; previousAgents: string[] }> }) {
    const agents = new Set<string>();
    for (const step of Object.values(run.steps)) {
      if (step.agent) agents.add(step.agent);
      for (const a of step.previousAgents) agents.add(a);
    }
    for (const name of agents) this.fleet.send(name, { runFinished: { runId: run.id } });
  }

  onClose(conn: AgentConnection) {
    const session = this.sessions.get(conn);
    if (!session) return;
    this.sessions.delete(conn);
    this.fleet.disconnect(session.name, session.out);
    this.peerLog.info(session.name, { agent: session.name }, 'agent disconnected');
  }

  private hello(conn: AgentConnection, msg: AgentMessageOut) {
    const hello = msg.hello!;
    if (!AGENT_NAME.test(hello.name)) {
      conn.send({ reject: { code: 'BAD_NAME', message: `agent name "${hello.name}" is not valid: use letters, digits, ".", "-", "_" (max 63)` } });
      return conn.close();
    }
    const id = conn.identity;
    if (id && id.name !== hello.name) {
      this.peerLog.warn(conn.peer, { claimed: hello.name, identity: id.name, peer: conn.peer }, 'Hello refused: it names another agent than its credential');
      conn.send({
        reject: { code: 'BAD_NAME', message: `this agent's credential names "${id.name}" but its Hello says "${hello.name}": an agent speaks only for itself; start it with --name ${id.name}, or enroll a new state dir for "${hello.name}"` },
      });
      return conn.close();
    }
    if (id && !id.serial && !this.opts.credentials.hasActive(id.name)) {
      // Over NATS the subject is the proof of who speaks; the certificate record says whether it still may.
      this.peerLog.warn(conn.peer, { agent: id.name, peer: conn.peer }, 'Hello refused: the agent has no active certificate (revoked, expired, or never enrolled)');
      conn.send({ reject: { code: 'REVOKED', message: `agent "${id.name}" has no active identity on this control plane (revoked, expired or never enrolled): enroll it with a new token (drover token create --enroll)` } });
      return conn.close();
    }
    const pinned = !id ? {} : id.serial ? this.opts.credentials.pinnedLabels(id.serial) : (this.opts.credentials.newestActive(id.name)?.labels ?? {});
    const signer = this.opts.signer;
    const out: AgentConnection = {
      transport: conn.transport,
      peer: conn.peer,
      identity: id,
      send: (m: ServerMessage) => {
        if (this.opts.mayAct && !this.opts.mayAct()) return;
        if (isControl(m)) void signer.seal(hello.name, m).then((sealed) => (this.opts.mayAct?.() ?? true) && conn.send(sealed));
        else conn.send(m);
      },
      close: (reason?: string) => conn.close(reason),
    };
    const live = this.fleet.connect(out, { ...hello, labels: { ...hello.labels, ...pinned } });
    const { instanceId } = live.record;
    if (hello.lastAckedSeq > live.record.appliedSeq) {
      // This control plane lost what it acknowledged (an older data dir): those messages are gone from the agent too; numbering goes on from its last ack.
      this.peerLog.warn(hello.name, { agent: hello.name, lastAckedSeq: hello.lastAckedSeq, appliedSeq: live.record.appliedSeq }, 'the agent had acknowledgements this control plane has no record of; taking its last acknowledged seq as applied');
      live.record.appliedSeq = hello.lastAckedSeq;
      this.store.putAgent(live.record);
      this.acked.delete(hello.name);
    }
    this.sessions.set(conn, { name: hello.name, out, ackDue: 0, acking: false, instanceId });
    // The first Hello since start finds the seq loaded from disk; later ones the last acknowledged, which may be below the applied one.
    const acked = this.acked.get(hello.name);
    const appliedSeq = acked?.instanceId === instanceId ? Math.min(acked.seq, live.record.appliedSeq) : live.record.appliedSeq;
    this.acked.set(hello.name, { instanceId, seq: appliedSeq });
    conn.send({ welcome: { agentId: hello.name, appliedSeq, heartbeatIntervalMs: this.opts.heartbeatIntervalMs } });
    this.peerLog.info(hello.name, { agent: hello.name, peer: conn.peer, transport: conn.transport, appliedSeq }, 'agent connected');
    this.runs.agentConnected(hello.name, hello.runningAttempts);
    // Runs of attempts the agent still remembers that have ended here: it may forget them. An unknown run is not
    // answered (this may not be the control plane that ran it, and forgetting an active run's attempts would run them again).
    const runIds = new Set((hello.finishedAttempts ?? []).map((id) => id.slice(0, Math.max(0, id.indexOf('/')))));
    for (const runId of runIds) {
      const run = runId ? this.store.getRun(runId) : undefined;
      if (run && TERMINAL_RUN.has(run.status)) out.send({ runFinished: { runId } });
    }
  }

  /** A new certificate for the agent, sent back signed; its next connection uses it. */
  private async renew(conn: AgentConnection, session: Session, csrPem: string) {
    // NATS links carry no certificate: renew the agent's newest one. --insecure links have none at all.
    const serial = conn.identity && (conn.identity.serial || this.opts.credentials.newestActive(session.name)?.serial);
    if (!serial) return;
    try {
      const rec = await this.opts.credentials.renew(serial, csrPem);
      session.out.send({ renewed: { certificatePem: rec.certPem, natsJwt: await this.opts.natsJwt(rec) } });
      this.opts.audit?.record({ actor: { kind: 'agent', id: session.name }, action: 'agent.renew', target: session.name, from: conn.peer, result: 'ok', detail: { serial: rec.serial } });
      this.log.info({ agent: session.name, serial: rec.serial, expires: new Date(rec.expiresMs).toISOString() }, 'agent certificate renewed');
    } catch (err) {
      this.peerLog.warn(session.name, { agent: session.name, err: (err as Error).message }, 'agent certificate not renewed');
      this.opts.audit?.record({ actor: { kind: 'agent', id: session.name }, action: 'agent.renew', target: session.name, from: conn.peer, result: 'REFUSED', detail: { reason: (err as Error).message.slice(0, 200) } });
    }
  }

  /** Closes the links of agents whose credential expired while connected (they did not renew). */
  sweepExpired() {
    const now = this.opts.now();
    for (const [conn, s] of this.sessions) {
      const until = conn.identity?.notAfterMs ?? 0;
      if (until && now > until) {
        this.log.error(
          { agent: s.name, expired: new Date(until).toISOString() },
          `the certificate of agent ${s.name} expired at ${new Date(until).toISOString()} and was not renewed; closing its link (enroll it again: drover token create --enroll)`,
        );
        conn.send({ reject: { code: 'CERTIFICATE_EXPIRED', message: `this agent's certificate expired at ${new Date(until).toISOString()} without renewal: enroll it again with a new token (drover token create --enroll)` } });
        conn.close('certificate expired');
      }
    }
  }

  /** Ends every link of `name` at once (revocation). */
  cutOff(name: string, reason: string) {
    for (const [conn, s] of this.sessions) {
      if (s.name !== name) continue;
      conn.send({ reject: { code: 'REVOKED', message: reason } });
      conn.close(reason);
    }
  }

  /**
   * Acks after the next durable flush; acks requested meanwhile coalesce into
   * one. A failed flush is asked again (the store paces its own retries), so
   * the ack follows the first write that succeeds, with no new message.
   */
  private scheduleAck(conn: AgentConnection, session: Session, seq: number) {
    session.ackDue = Math.max(session.ackDue, seq);
    if (session.acking) return;
    session.acking = true;
    const flushAndAck = () => setTimeout(flushNow, ACK_DELAY_MS);
    const flushNow = () => {
      const seqNow = session.ackDue;
      this.store.flush().then(
        () => {
          const known = this.acked.get(session.name);
          if (known?.instanceId === session.instanceId && known.seq < seqNow) known.seq = seqNow;
          if (!this.sessions.has(conn)) return void (session.acking = false);
          conn.send({ ack: { seq: seqNow } });
          if (session.ackDue > seqNow) flushAndAck();
          else session.acking = false;
        },
        (err: unknown) => {
          // The store logged the failure; a closed link is acknowledged by its next Welcome instead.
          this.log.debug({ agent: session.name, err: (err as Error).message }, 'ack waits: the state write failed; asking again');
          if (this.sessions.has(conn)) flushAndAck();
          else session.acking = false;
        },
      );
    };
    flushAndAck();
  }
}
