/**
 * The four metrics against a fixture history whose figures are worked out
 * by hand in the comments. Units: NOW is the clock; times are ms before it.
 */
import { describe, expect, it } from 'vitest';
import { computeStats, percentile, StatsService, stepAttempts, type Stats } from '../../control-plane/metrics/stats.js';
import { ApiError } from '../../control-plane/errors.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import type { AttemptRecord, AttemptStatus, FleetSample, RunRecord, StepRecord } from '../../control-plane/store/store.js';

const NOW = 1_800_000_000_000;
const HOUR = 3_600_000;
const S = 1000;
const MiB = 1024 * 1024;

const attempt = (n: number, status: AttemptStatus): AttemptRecord => ({ n, id: `r/s/${n}/a`, agent: 'a', attempt: n, status, exitCode: 0, startedMs: 0, endedMs: 0, message: '', superseded: '', note: '' });

function step(id: string, opts: Partial<StepRecord> & { history?: AttemptStatus[] }): StepRecord {
  const { history, ...rest } = opts;
  return {
    id, parent: '', kind: 'run', held: false, agent: 'a', previousAgents: [], status: 'succeeded', attempt: history?.length ?? 1, exitCode: 0,
    startedMs: 0, endedMs: 0, cpuSeconds: 0, peakRssBytes: 0, outputs: {}, message: '',
    attempts: history?.map((st, i) => attempt(i + 1, st)),
    ...rest,
  };
}

function run(id: string, workflow: string, status: RunRecord['status'], createdMs: number, endedMs: number, steps: StepRecord[]): RunRecord {
  return {
    id, workflow, status, createdMs, startedMs: createdMs, endedMs, params: {}, message: '', cancelRequested: false, deadlineExceeded: false, workflowVersion: 0,
    plan: { workflow, hash: 'h', params: {}, paramsJson: '{}', deadlineMs: 0, concurrency: 'allow', onAgentLost: 'fail', steps: [], groups: [] },
    steps: Object.fromEntries(steps.map((s) => [s.id, s])),
  };
}

/** deploy run i (1..20) is created at NOW - 3000 s + 60 s·i and takes 10 s·i, so it ends at NOW - 3000 s + 70 s·i. */
const created = (i: number) => NOW - 3000 * S + 60 * S * i;
const FAILED = new Set([5, 12]);

function fixture(): RunRecord[] {
  const runs: RunRecord[] = [];
  for (let i = 1; i <= 20; i++) {
    const status = FAILED.has(i) ? 'failed' : i === 20 ? 'cancelled' : 'succeeded';
    // One attempt each, but run 5 failed twice, run 12 was lost then failed, run 20 was cancelled.
    const history: AttemptStatus[] = i === 5 ? ['failed', 'failed'] : i === 12 ? ['lost', 'failed'] : i === 20 ? ['cancelled'] : ['succeeded'];
    const steps = [step('build', { history, status: status === 'failed' ? 'failed' : status === 'cancelled' ? 'cancelled' : 'succeeded', cpuSeconds: 0.5, peakRssBytes: i === 7 ? 300 * MiB : 100 * MiB })];
    // Run 1 also has a record from before attempt histories (3rd attempt succeeded: 3 attempts, 2 failed) and a fan-out group (no attempts of its own).
    if (i === 1) steps.push(step('legacy', { attempt: 3, cpuSeconds: 1.25, peakRssBytes: 50 * MiB }), step('fan', { kind: 'group', attempt: 0 }));
    runs.push(run(`d${i}`, 'deploy', status, created(i), created(i) + 10 * S * i, steps));
  }
  // Ended before the window (NOW - 1 h): left out everywhere, its sample too.
  runs.push(run('d-old', 'deploy', 'failed', NOW - 5000 * S, NOW - 4000 * S, [step('build', { history: ['failed'], status: 'failed', cpuSeconds: 99, peakRssBytes: 999 * MiB })]));
  // Active now: counted as active, nothing else.
  runs.push(run('d-running', 'deploy', 'running', NOW - 100 * S, 0, [step('build', { status: 'running', history: ['running'], cpuSeconds: 7 })]));
  runs.push(run('d-pending', 'deploy', 'pending', NOW - 10 * S, 0, []));
  // backup: b1 succeeded in 30 s after one failed attempt, b2 cancelled after 90 s.
  runs.push(run('b1', 'backup', 'succeeded', NOW - 600 * S, NOW - 570 * S, [step('dump', { history: ['failed', 'succeeded'], cpuSeconds: 2, peakRssBytes: 10 * MiB })]));
  runs.push(run('b2', 'backup', 'cancelled', NOW - 300 * S, NOW - 210 * S, [step('dump', { history: ['cancelled'], status: 'cancelled' })]));
  return runs;
}

const sample = (t: number, cpuPercent: number, memoryPercent: number, connected = 2): FleetSample => ({ t, cpuPercent, memoryPercent, connected, agents: 3 });

const SAMPLES: FleetSample[] = [
  sample(NOW - 4500 * S, 77, 77), // inside d-old only: left out
  sample(created(1) + 5 * S, 10, 20), // inside d1 [created(1), +10 s]
  sample(created(1) + 30 * S, 90, 90), // after d1 ended, before d2 started: inside no run
  sample(NOW - 590 * S, 40, 50), // inside b1 [-600 s, -570 s]
  sample(NOW - 400 * S, 99, 99), // between b1 and b2: inside no run
  sample(NOW - 250 * S, 20, 30), // inside b2 [-300 s, -210 s]
  sample(NOW - 240 * S, 0, 0, 0), // inside b2 but no agent connected: not a measurement
];

const stats = (workflow = '', buckets = 6): Stats => computeStats({ runs: fixture(), samples: SAMPLES, windowMs: HOUR, workflow, buckets, nowMs: NOW });

describe('stats - the four metrics over a fixture history', () => {
  it('stats - per workflow: completion, cycle time p50/p95/max, error rates, resources', () => {
    const s = stats();
    expect(s.fromMs).toBe(NOW - HOUR);
    expect(s.toMs).toBe(NOW);
    expect(s.workflows.map((w) => w.workflow)).toEqual(['backup', 'deploy']);
    const deploy = s.workflows[1];
    const { trend: _t, ...figures } = deploy;
    expect(figures).toEqual({
      workflow: 'deploy',
      // d1..d20 ended in the window (d-old did not): 17 succeeded, d5 and d12 failed, d20 cancelled.
      runsEnded: 20,
      runsSucceeded: 17,
      runsFailed: 2,
      runsCancelled: 1,
      // d-running and d-pending.
      runsActive: 2,
      completionRate: 17 / 20,
      // Cycles 10 s, 20 s, ..., 200 s. p50: rank ceil(0.5·20) = 10 -> 100 s. p95: rank ceil(0.95·20) = 19 -> 190 s. max 200 s.
      cycleP50Ms: 100 * S,
      cycleP95Ms: 190 * S,
      cycleMaxMs: 200 * S,
      // build: 17 runs × 1 + d5 2 + d12 2 + d20 1 = 22; legacy (no history, attempt 3) 3; the group 0. Total 25.
      attempts: 25,
      // d5 failed 2, d12 lost 1 + failed 1, legacy 2 (attempts 1 and 2 were retried). Total 6.
      attemptsFailed: 6,
      attemptErrorRate: 6 / 25,
      runErrorRate: 2 / 20,
      // 20 × 0.5 s + 1.25 s.
      cpuSeconds: 11.25,
      // d7's build.
      peakRssBytes: 300 * MiB,
      // Only the sample 5 s into d1 lies in a deploy run.
      fleetCpuPercent: 10,
      fleetMemoryPercent: 20,
    });
    const { trend: _b, ...backup } = s.workflows[0];
    expect(backup).toEqual({
      workflow: 'backup',
      runsEnded: 2,
      runsSucceeded: 1,
      runsFailed: 0,
      runsCancelled: 1,
      runsActive: 0,
      completionRate: 0.5,
      // Cycles 30 s, 90 s. p50: rank ceil(1) = 1 -> 30 s. p95: rank ceil(1.9) = 2 -> 90 s.
      cycleP50Ms: 30 * S,
      cycleP95Ms: 90 * S,
      cycleMaxMs: 90 * S,
      // b1: failed + succeeded; b2: cancelled.
      attempts: 3,
      attemptsFailed: 1,
      attemptErrorRate: 1 / 3,
      runErrorRate: 0,
      cpuSeconds: 2,
      peakRssBytes: 10 * MiB,
      // Samples at -590 s (40/50) and -250 s (20/30); the one at -240 s has no agent connected.
      fleetCpuPercent: 30,
      fleetMemoryPercent: 40,
    });
  });

  it('stats - overall pools every run (not an average of workflows), p95 below max and above p50', () => {
    const { trend: _t, ...o } = stats().overall;
    expect(o).toEqual({
      workflow: '',
      runsEnded: 22,
      runsSucceeded: 18,
      runsFailed: 2,
      runsCancelled: 2,
      runsActive: 2,
      completionRate: 18 / 22,
      // Sorted: 10 20 30 30 40 50 60 70 80 90 90 100 110 ... 200 (22 values).
      // p50: rank ceil(11) = 11 -> 90 s. p95: rank ceil(20.9) = 21 -> 190 s. max 200 s.
      cycleP50Ms: 90 * S,
      cycleP95Ms: 190 * S,
      cycleMaxMs: 200 * S,
      attempts: 28,
      attemptsFailed: 7,
      attemptErrorRate: 7 / 28,
      runErrorRate: 2 / 22,
      cpuSeconds: 13.25,
      peakRssBytes: 300 * MiB,
      // Samples 10/20, 40/50, 20/30: cpu 70 / 3, memory 100 / 3, to 2 places.
      fleetCpuPercent: 23.33,
      fleetMemoryPercent: 33.33,
    });
  });

  it('stats - the trend splits the window into equal slices by when runs ended', () => {
    // 6 slices of 10 min from NOW - 1 h. dI ends 600 s + 70 s·I into the window: slice floor(1 + 7I/60):
    // d1..d8 -> 1, d9..d17 -> 2, d18..d20 -> 3; b1 (-570 s) and b2 (-210 s) -> 5.
    const t = stats().overall.trend;
    expect(t.map((b) => b.startMs)).toEqual([0, 1, 2, 3, 4, 5].map((k) => NOW - HOUR + k * 600 * S));
    expect(t.map(({ ended, succeeded, failed }) => [ended, succeeded, failed])).toEqual([
      [0, 0, 0],
      [8, 7, 1], // d5 failed
      [9, 8, 1], // d12 failed
      [3, 2, 0], // d20 cancelled: neither
      [0, 0, 0],
      [2, 1, 0], // b2 cancelled
    ]);
    // Medians: 10..80 s rank 4 -> 40 s; 90..170 s rank 5 -> 130 s; 180,190,200 rank 2 -> 190 s; 30,90 rank 1 -> 30 s.
    expect(t.map((b) => b.cycleP50Ms)).toEqual([0, 40 * S, 130 * S, 190 * S, 0, 30 * S]);
  });

  it('stats - a workflow filter keeps only that workflow, overall included', () => {
    const s = stats('backup');
    expect(s.workflows.map((w) => w.workflow)).toEqual(['backup']);
    expect({ ...s.overall, workflow: 'backup' }).toEqual(s.workflows[0]);
    expect(s.overall.runsEnded).toBe(2);
    expect(s.overall.fleetCpuPercent).toBe(30);
  });

  it('stats - an empty window gives zeros, not NaN, and still counts active runs', () => {
    const s = computeStats({ runs: fixture(), samples: SAMPLES, windowMs: HOUR, workflow: '', buckets: 4, nowMs: NOW + 10 * 24 * HOUR });
    expect(s.workflows.map((w) => [w.workflow, w.runsEnded, w.runsActive])).toEqual([['deploy', 0, 2]]);
    const { trend, ...o } = s.overall;
    expect(o).toEqual({
      workflow: '', runsEnded: 0, runsSucceeded: 0, runsFailed: 0, runsCancelled: 0, runsActive: 2, completionRate: 0,
      cycleP50Ms: 0, cycleP95Ms: 0, cycleMaxMs: 0, attempts: 0, attemptsFailed: 0, attemptErrorRate: 0, runErrorRate: 0,
      cpuSeconds: 0, peakRssBytes: 0, fleetCpuPercent: 0, fleetMemoryPercent: 0,
    });
    expect(trend.map((b) => b.ended)).toEqual([0, 0, 0, 0]);
    const none = computeStats({ runs: [], samples: [], windowMs: HOUR, workflow: 'nosuch', buckets: 1, nowMs: NOW });
    expect(none.workflows).toEqual([]);
    expect(none.overall.runsEnded).toBe(0);
  });

  it('stats - percentile is nearest rank; attempts fall back to the step record without a history', () => {
    expect(percentile([], 0.95)).toBe(0);
    expect(percentile([7], 0.95)).toBe(7);
    expect(percentile([1, 2, 3, 4], 0.5)).toBe(2);
    expect(percentile([...Array(100).keys()].map((i) => i + 1), 0.95)).toBe(95);
    expect(stepAttempts(step('s', { attempt: 2, status: 'failed' }))).toEqual({ attempts: 2, failed: 2 });
    expect(stepAttempts(step('s', { attempt: 0, status: 'skipped' }))).toEqual({ attempts: 0, failed: 0 });
  });
});

describe('stats - StatsService over a store', () => {
  it('stats - StatsService fills the defaults (24 h, 24 slices) and reads runs and samples from the store', () => {
    const store = new MemoryStore();
    for (const r of fixture()) store.putRun(r);
    for (const s of SAMPLES) store.appendFleetSample(s);
    const s = new StatsService(store, () => NOW).get({});
    expect(s.fromMs).toBe(NOW - 24 * HOUR);
    expect(s.overall.trend).toHaveLength(24);
    // d-old ended 4000 s ago: inside 24 h now.
    expect(s.overall.runsEnded).toBe(23);
    expect(new StatsService(store, () => NOW).get({ windowMs: HOUR, buckets: 6 }).overall).toEqual(stats().overall);
  });

  it('stats - StatsService refuses a negative window or too many slices with INVALID_REQUEST', () => {
    const svc = new StatsService(new MemoryStore(), () => NOW);
    const bad = (q: object) => {
      try {
        svc.get(q);
      } catch (err) {
        return err;
      }
      return undefined;
    };
    const e1 = bad({ windowMs: -5 }) as ApiError;
    expect(e1).toBeInstanceOf(ApiError);
    expect(e1.code).toBe('INVALID_REQUEST');
    expect(e1.message).toBe('window_ms -5 is not between 0 and 31622400000 (366 days)');
    const e2 = bad({ buckets: 5000 }) as ApiError;
    expect(e2.code).toBe('INVALID_REQUEST');
    expect(e2.message).toBe('buckets 5000 is not between 0 and 1440');
  });
});
