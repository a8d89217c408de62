/**
 * The control plane's Prometheus metrics (docs/metrics.md, "Prometheus"), in
 * a Registry of its own. Counters and histograms follow run and step changes
 * as they happen (so they start at zero with each process, as Prometheus
 * expects); fleet gauges are computed from the live fleet on each scrape.
 * A step is counted once, with the first final status it reaches; an
 * attempt once, with the first final status its history gives it.
 * The four orchestration metrics themselves (`drover_stats_*`) come from the
 * same StatsService as `drover stats` and the dashboard, over its default
 * 24 h window, computed from stored history on each scrape: the same numbers
 * in all three places, and a restart does not reset them.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Fleet } from '../fleet.js';
import { fleetSample } from '../metrics/fleet-sampler.js';
import type { StatsService, WorkflowStats } from '../metrics/stats.js';
import type { Runs } from '../runs.js';
import { TERMINAL_RUN, TERMINAL_STEP, type RunRecord, type StepRecord, type Store } from '../store/store.js';

/** Run durations (submit to end), seconds: from a quick script to a long rollout. */
const RUN_BUCKETS = [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600];
/** Step durations (start to end), seconds. */
const STEP_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
/** Durable store writes (fsync included), seconds. */
const WRITE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Runs whose counted steps are remembered at once (an entry is dropped when its run ends; this bounds a leak). */
const MAX_TRACKED_RUNS = 10_000;

export interface MetricSources {
  fleet: Fleet;
  runs: Runs;
  store: Store;
  /** The agent sessions' counters: `duplicates` is every resent message recognised and not applied again. */
  sessions: { stats: { duplicates: number; violations: Partial<Record<string, number>> } };
  /** The four metrics over the last 24 h (the drover_stats_* series). */
  stats: StatsService;
}

/** The drover_stats_* gauges: name, help, and the WorkflowStats field (seconds and ratios as Prometheus wants them). */
const STATS_GAUGES: readonly [string, string, (w: WorkflowStats) => number][] = [
  ['drover_stats_runs_ended', 'Runs that ended in the last 24 h.', (w) => w.runsEnded],
  ['drover_stats_completion_ratio', 'Runs succeeded / runs ended, last 24 h (0 when none ended).', (w) => w.completionRate],
  ['drover_stats_run_error_ratio', 'Runs failed / runs ended, last 24 h.', (w) => w.runErrorRate],
  ['drover_stats_attempt_error_ratio', 'Failed or lost step attempts / attempts, of the runs that ended in the last 24 h.', (w) => w.attemptErrorRate],
  ['drover_stats_cpu_seconds', "CPU-seconds of the steps of the runs that ended in the last 24 h.", (w) => w.cpuSeconds],
  ['drover_stats_peak_memory_bytes', 'Peak memory of any step of the runs that ended in the last 24 h.', (w) => w.peakRssBytes],
  ['drover_stats_fleet_cpu_percent', "The fleet's mean CPU use while those runs ran, percent.", (w) => w.fleetCpuPercent],
  ['drover_stats_fleet_memory_percent', "The fleet's mean memory use while those runs ran, percent.", (w) => w.fleetMemoryPercent],
];

export class DroverMetrics {
  readonly registry = new Registry();
  private readonly r = [this.registry];
  private src: MetricSources | undefined;

  readonly runsTotal = new Counter({ name: 'drover_runs_total', help: 'Runs ended, by workflow and final status.', labelNames: ['workflow', 'status'], registers: this.r });
  readonly runsActive = new Gauge({ name: 'drover_runs_active', help: 'Runs pending or running now, by workflow.', labelNames: ['workflow'], registers: this.r, collect: () => this.active() });
  readonly runDuration = new Histogram({ name: 'drover_run_duration_seconds', help: 'Run duration from submit to end.', labelNames: ['workflow'], buckets: RUN_BUCKETS, registers: this.r });
  readonly stepsTotal = new Counter({ name: 'drover_steps_total', help: 'Steps (fan-out instances one by one) that reached a final status, by workflow and status.', labelNames: ['workflow', 'status'], registers: this.r });
  readonly attemptsTotal = new Counter({ name: 'drover_step_attempts_total', help: 'Step attempts that ended, by workflow and status (succeeded, failed, cancelled, lost).', labelNames: ['workflow', 'status'], registers: this.r });
  readonly stepDuration = new Histogram({ name: 'drover_step_duration_seconds', help: 'Duration of steps that ran, from start to end.', labelNames: ['workflow'], buckets: STEP_BUCKETS, registers: this.r });
  // The fleet gauges are computed together, by the first of them a scrape collects.
  readonly agents = new Gauge({ name: 'drover_agents', help: "Agents known, by state and transport ('none' without a link).", labelNames: ['state', 'transport'], registers: this.r, collect: () => this.fleetGauges() });
  readonly agentCpu = new Gauge({ name: 'drover_agent_cpu_percent', help: 'CPU use of each connected agent, percent, from its last heartbeat.', labelNames: ['agent'], registers: this.r });
  readonly agentMemory = new Gauge({ name: 'drover_agent_memory_percent', help: 'Memory use of each connected agent, percent, from its last heartbeat.', labelNames: ['agent'], registers: this.r });
  readonly fleetCpu = new Gauge({ name: 'drover_fleet_cpu_percent', help: 'Mean CPU use over connected agents, percent (0 with none).', registers: this.r });
  readonly fleetMemory = new Gauge({ name: 'drover_fleet_memory_percent', help: 'Mean memory use over connected agents, percent (0 with none).', registers: this.r });
  readonly connections = new Gauge({ name: 'drover_agent_connections', help: 'Agent links open now, by transport.', labelNames: ['transport'], registers: this.r });
  readonly replays = new Counter({
    name: 'drover_journal_replays_total',
    help: 'Agent messages resent from a journal (after a reconnect or restart), recognised and not applied again.',
    registers: this.r,
    collect: () => {
      this.replays.reset();
      this.replays.inc(this.src?.sessions.stats.duplicates ?? 0);
    },
  });
  readonly violations = new Counter({
    name: 'drover_agent_protocol_violations_total',
    help: 'Agent messages refused for breaking a rule of docs/protocol.md (each answered with a Reject and a closed link), by Reject code.',
    labelNames: ['code'],
    registers: this.r,
    collect: () => {
      this.violations.reset();
      for (const [code, n] of Object.entries(this.src?.sessions.stats.violations ?? {})) this.violations.inc({ code }, n ?? 0);
    },
  });
  readonly cycleTime = new Gauge({
    name: 'drover_stats_cycle_seconds',
    help: 'Cycle time (submit to end) of the runs that ended in the last 24 h: quantile 0.5, 0.95 (nearest rank) and 1 (max). The series without a workflow label is every workflow.',
    labelNames: ['workflow', 'quantile'],
    registers: this.r,
    collect: () => guard(() => this.statsGauges()),
  });
  private readonly statsGauges_ = STATS_GAUGES.map(([name, help]) => new Gauge({ name, help, labelNames: ['workflow'], registers: this.r }));
  /** Replicated control planes (--store jetstream): this replica's role and epoch, and how far the state stream's NATS replicas are behind its leader. */
  readonly leader = new Gauge({ name: 'drover_leader', help: 'Whether this control plane leads (1) or not (0); a single control plane on lowdb always leads.', registers: this.r });
  readonly leaderEpoch = new Gauge({ name: 'drover_leader_epoch', help: "The leader lease's fencing epoch this control plane leads at (0 without --store jetstream).", registers: this.r });
  readonly storeReplicaLag = new Gauge({ name: 'drover_store_replica_lag', help: "Operations each replica of the state stream is behind the stream's leader (--store jetstream), by NATS server.", labelNames: ['server'], registers: this.r });
  readonly storeReplicaCurrent = new Gauge({ name: 'drover_store_replica_current', help: 'Whether each replica of the state stream is caught up (1) or not (0), by NATS server.', labelNames: ['server'], registers: this.r });
  readonly storeWrites = new Histogram({ name: 'drover_store_write_seconds', help: 'Durable writes of the store (a batch of changes, synced), seconds.', buckets: WRITE_BUCKETS, registers: this.r });

  /** Per run: the steps and attempts counted already. */
  private counted = new Map<string, { steps: Set<string>; attempts: Set<string> }>();

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** A durable store write took `seconds` (the store's onWrite hook). */
  storeWrite(seconds: number): void {
    this.storeWrites.observe(seconds);
  }

  /** Starts following runs and steps, and computes the gauges from `s` on each scrape. */
  watch(s: MetricSources): void {
    this.src = s;
    // These run inside the run machine's effects: a metric must never break a run, so nothing thrown leaves them.
    s.runs.topics.all.subscribe((c) => {
      if (c.type === 'step') guard(() => this.step(c.run, c.step));
    });
    s.runs.ended.subscribe((run) =>
      guard(() => {
        if (!TERMINAL_RUN.has(run.status)) return;
        for (const step of Object.values(run.steps)) this.step(run, step);
        this.counted.delete(run.id);
        this.runsTotal.inc({ workflow: run.workflow, status: run.status });
        if (run.endedMs && run.createdMs) this.runDuration.observe({ workflow: run.workflow }, Math.max(0, run.endedMs - run.createdMs) / 1000);
      }),
    );
  }

  /** The four metrics from the stats service; the overall row has no workflow label. */
  private statsGauges() {
    const { cycleTime, statsGauges_: gauges } = this;
    for (const g of [cycleTime, ...gauges]) g.reset();
    const stats = this.src?.stats.get();
    if (!stats) return;
    for (const w of [stats.overall, ...stats.workflows]) {
      const labels = w.workflow ? { workflow: w.workflow } : {};
      STATS_GAUGES.forEach(([, , value], i) => gauges[i].set(labels, value(w)));
      const q: [string, number][] = [['0.5', w.cycleP50Ms], ['0.95', w.cycleP95Ms], ['1', w.cycleMaxMs]];
      for (const [quantile, ms] of q) cycleTime.set({ ...labels, quantile }, ms / 1000);
    }
  }

  private active() {
    this.runsActive.reset();
    for (const r of this.src?.store.listRuns() ?? []) if (!TERMINAL_RUN.has(r.status)) this.runsActive.inc({ workflow: r.workflow });
  }

  private fleetGauges() {
    const { agents, agentCpu, agentMemory, fleetCpu, fleetMemory, connections } = this;
    for (const g of [agents, agentCpu, agentMemory, connections]) g.reset();
    for (const t of ['grpc', 'nats']) connections.set({ transport: t }, 0);
    const all = this.src?.fleet.list() ?? [];
    for (const a of all) {
      const link = a.state === 'connected' ? a.conn : undefined;
      agents.inc({ state: a.state, transport: link?.transport ?? 'none' });
      if (!link) continue;
      connections.inc({ transport: link.transport });
      if (!a.heartbeat) continue;
      agentCpu.set({ agent: a.record.name }, a.heartbeat.cpuPercent);
      agentMemory.set({ agent: a.record.name }, a.heartbeat.memoryPercent);
    }
    // The same mean as the stored fleet samples (drover stats).
    const sample = fleetSample(all, 0);
    fleetCpu.set(sample.cpuPercent);
    fleetMemory.set(sample.memoryPercent);
  }

  private step(run: RunRecord, step: StepRecord) {
    if (step.kind === 'group') return;
    let c = this.counted.get(run.id);
    if (!c) {
      c = { steps: new Set(), attempts: new Set() };
      this.counted.set(run.id, c);
      if (this.counted.size > MAX_TRACKED_RUNS) this.counted.delete(this.counted.keys().next().value!);
    }
    const workflow = run.workflow;
    for (const a of step.attempts ?? []) {
      if (a.status === 'running' || c.attempts.has(a.id)) continue;
      c.attempts.add(a.id);
      this.attemptsTotal.inc({ workflow, status: a.status });
    }
    if (!TERMINAL_STEP.has(step.status) || c.steps.has(step.id)) return;
    c.steps.add(step.id);
    this.stepsTotal.inc({ workflow, status: step.status });
    if (step.startedMs && step.endedMs) this.stepDuration.observe({ workflow }, Math.max(0, step.endedMs - step.startedMs) / 1000);
  }

  /** The exposition text and its content type. */
  async scrape(): Promise<{ text: string; contentType: string }> {
    return { text: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}

/** Runs `fn`; a metric that cannot be counted is skipped (prom-client throws only on a label mistake, a bug). */
function guard(fn: () => void): void {
  try {
    fn();
  } catch {
    // skipped: see above
  }
}
