/**
 * A fleet simulator: many agents in one process, each with a link of its own
 * (gRPC: its own TCP connection; NATS: sessions on a shared connection),
 * speaking the real protocol — Hello, heartbeats, sequenced StepEvents with
 * acks and resend after reconnect, reconnect with full-jitter backoff — and
 * running every step as a built-in no-op (started, then succeeded).
 *
 * Used by the fault suite (500 agents reconnecting at once) and by
 * `npm run bench` (fan-out to thousands of agents, idle fleets).
 */
import { randomUUID } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { AgentMessage, AssignOut, ServerMessageOut } from '../../proto/index.js';
import { ControlVerifier } from '../../agent/control.js';
import type { AgentLink, LinkSession } from '../../agent/link/link.js';

/** Same reconnect policy as the real agent (agent/connection.ts). */
const RECONNECT_BASE_MS = 100;
const RECONNECT_MAX_MS = 5_000;

export interface SimOptions {
  count: number;
  /** Agent names are `${prefix}${index}`. */
  prefix: string;
  labels: Record<string, string>;
  /** Builds the link for one simulated agent. */
  link(name: string): AgentLink;
  /** The key control messages are verified with, as a real agent does (enrollment hands it out). */
  controlKey: KeyObject | undefined;
  /** Override the heartbeat interval the control plane asks for (ms). */
  heartbeatMs?: number;
  /**
   * Spread the first connections evenly over this many ms (default 0: all at
   * once). Thousands of gRPC agents dialling in the same instant overflow the
   * server's TCP accept queue (Node listens with a backlog of 511) and then
   * wait out SYN retransmits of 1, 3, 7 s; real fleets arrive spread by their
   * reconnect jitter.
   */
  rampMs?: number;
}

export interface SimStats {
  welcomes: number;
  stepsRun: number;
  /** ms from the Assign's arrival to... nothing: steps are no-ops; kept for symmetry. */
  resent: number;
}

interface Pending {
  steps: Map<string, { needs: string[]; done: boolean }>;
  released: Set<string>;
}

class SimAgent {
  private session: LinkSession | undefined;
  private seq = 0;
  private unacked: AgentMessage[] = [];
  private failures = 0;
  private beat: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private runs = new Map<string, Pending>();
  private stopped = false;
  private readonly instanceId = randomUUID();
  private readonly verifier: ControlVerifier;
  connected = false;

  constructor(
    readonly name: string,
    private readonly link: AgentLink,
    private readonly labels: Record<string, string>,
    private readonly stats: SimStats,
    private readonly heartbeatMs: number | undefined,
    controlKey: KeyObject | undefined,
  ) {
    this.verifier = new ControlVerifier(name, controlKey, undefined);
  }

  open() {
    if (this.stopped) return;
    const session = this.link.open({
      onMessage: (m) => this.onMessage(session, m),
      onClose: () => this.onClose(session),
    });
    this.session = session;
    session.send({
      seq: 0,
      hello: {
        name: this.name,
        labels: this.labels,
        instanceId: this.instanceId,
        lastAckedSeq: this.seq - this.unacked.length,
        facts: { hostname: this.name, os: 'simulated', arch: process.arch, cpuCount: 1, memoryBytes: 1 << 30, agentVersion: 'sim' },
      },
    });
  }

  stop() {
    this.stopped = true;
    clearInterval(this.beat);
    clearTimeout(this.retry);
    this.session?.close();
  }

  private send(body: Omit<AgentMessage, 'seq'>) {
    const msg = { ...body, seq: ++this.seq } as AgentMessage;
    this.unacked.push(msg);
    if (this.connected) this.session?.send(msg);
  }

  private onMessage(session: LinkSession, raw: ServerMessageOut) {
    const verdict = this.verifier.check(raw);
    if (!verdict.ok) return;
    const m = verdict.message;
    if (m.welcome) {
      this.connected = true;
      this.failures = 0;
      this.stats.welcomes++;
      const applied = m.welcome.appliedSeq;
      this.unacked = this.unacked.filter((x) => (x.seq as number) > applied);
      this.stats.resent += this.unacked.length;
      for (const x of this.unacked) session.send(x);
      const every = this.heartbeatMs ?? (m.welcome.heartbeatIntervalMs || 5000);
      clearInterval(this.beat);
      // Spread heartbeats over the interval instead of all at once.
      setTimeout(() => {
        if (this.session !== session) return;
        this.heartbeat();
        this.beat = setInterval(() => this.heartbeat(), every);
      }, Math.random() * every).unref();
    } else if (m.ack) {
      const upTo = m.ack.seq;
      let n = 0;
      while (n < this.unacked.length && (this.unacked[n].seq as number) <= upTo) n++;
      this.unacked.splice(0, n);
    } else if (m.assign) {
      this.assign(m.assign);
    } else if (m.release) {
      const run = this.runs.get(m.release.runId);
      run?.released.add(m.release.stepId);
      if (run) this.pump(m.release.runId, run);
    }
  }

  private heartbeat() {
    if (!this.connected) return;
    this.session?.send({ seq: 0, heartbeat: { atMs: Date.now(), cpuPercent: 1, memoryPercent: 10, memoryTotalBytes: 1 << 30, memoryUsedBytes: 1 << 27, diskPercent: 20, load: [0, 0, 0] } });
  }

  private assign(a: AssignOut) {
    let run = this.runs.get(a.runId);
    if (!run) this.runs.set(a.runId, (run = { steps: new Map(), released: new Set() }));
    for (const s of a.steps) if (!run.steps.has(s.id)) run.steps.set(s.id, { needs: s.needs, done: false });
    for (const r of a.released) run.released.add(r.stepId);
    this.pump(a.runId, run);
  }

  private pump(runId: string, run: Pending) {
    let progressed = true;
    while (progressed) {
      progressed = false;
      for (const [id, s] of run.steps) {
        if (s.done) continue;
        if (!s.needs.every((n) => run.released.has(n) || run.steps.get(n)?.done)) continue;
        s.done = true;
        progressed = true;
        const now = Date.now();
        const attemptId = `${runId}/${id}/1/${this.name}`;
        this.send({ stepEvent: { runId, stepId: id, attemptId, attempt: 1, phase: 'STEP_PHASE_STARTED', startedAtMs: now } });
        this.send({ stepEvent: { runId, stepId: id, attemptId, attempt: 1, phase: 'STEP_PHASE_SUCCEEDED', startedAtMs: now, endedAtMs: Date.now() } });
        this.stats.stepsRun++;
      }
    }
    if ([...run.steps.values()].every((s) => s.done)) this.runs.delete(runId);
  }

  private onClose(session: LinkSession) {
    if (this.session !== session) return;
    this.connected = false;
    this.session = undefined;
    clearInterval(this.beat);
    if (this.stopped) return;
    this.failures++;
    const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** Math.min(this.failures, 16));
    this.retry = setTimeout(() => this.open(), Math.random() * ceiling);
  }
}

export class SimFleet {
  readonly stats: SimStats = { welcomes: 0, stepsRun: 0, resent: 0 };
  private agents: SimAgent[] = [];

  constructor(private readonly opts: SimOptions) {}

  /** Opens every agent's link; connecting continues in the background. */
  start(): void {
    const { count, rampMs = 0 } = this.opts;
    for (let i = 0; i < count; i++) {
      const name = `${this.opts.prefix}${i}`;
      const agent = new SimAgent(name, this.opts.link(name), this.opts.labels, this.stats, this.opts.heartbeatMs, this.opts.controlKey);
      this.agents.push(agent);
      if (rampMs > 0) setTimeout(() => agent.open(), (rampMs * i) / count);
      else agent.open();
    }
  }

  connected(): number {
    return this.agents.filter((a) => a.connected).length;
  }

  stop(): void {
    for (const a of this.agents) a.stop();
  }
}
