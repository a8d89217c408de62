/**
 * The four orchestration metrics (completion rate, cycle time, error rate,
 * resource utilisation), per workflow and overall, over a window, computed
 * from the stored run records and fleet samples. Nothing here counts as
 * things happen, so a restart changes no figure. The definitions are in
 * docs/metrics.md; `computeStats` is their one implementation, and the gRPC
 * API, the dashboard feed and the CLI all show what it returns.
 */
import type { StatsBucketOut, StatsOut, WorkflowStatsOut } from '../../proto/index.js';
import { ApiError } from '../errors.js';
import { TERMINAL_RUN, type FleetSample, type RunRecord, type StepRecord, type Store } from '../store/store.js';

/** The window when none is asked for: the last day. */
export const DEFAULT_WINDOW_MS = 24 * 3_600_000;
/** Trend points when none are asked for: one an hour over the default window. */
export const DEFAULT_BUCKETS = 24;
/** The longest window asked for; runs older than `--max-runs` keeps are gone anyway. */
export const MAX_WINDOW_MS = 366 * 24 * 3_600_000;
/** The most trend points asked for (one a minute over a day). */
export const MAX_BUCKETS = 1440;

/** The Stats message, as the API sends it (camelCase, int64 as numbers), with `overall` always set. */
export type Stats = StatsOut & { overall: WorkflowStatsOut };
export type WorkflowStats = WorkflowStatsOut;
export type StatsBucket = StatsBucketOut;

/** What `computeStats` is a function of. */
export interface StatsInput {
  /** Every stored run (any order); those of other workflows and outside the window are left out here. */
  runs: readonly RunRecord[];
  /** Fleet samples covering the runs' intervals (more is fine), oldest first. */
  samples: readonly FleetSample[];
  windowMs: number;
  /** '' = every workflow. */
  workflow: string;
  buckets: number;
  nowMs: number;
}

/** A query as callers give it: every field optional, 0 or '' meaning the default. */
export interface StatsQuery {
  workflow?: string;
  windowMs?: number;
  buckets?: number;
}

/** The metrics over [nowMs - windowMs, nowMs]: a run counts when it ended inside it. */
export function computeStats(input: StatsInput): Stats {
  const { nowMs, windowMs, workflow, buckets } = input;
  const fromMs = nowMs - windowMs;
  const mine = input.runs.filter((r) => !workflow || r.workflow === workflow);
  const ended = mine.filter((r) => TERMINAL_RUN.has(r.status) && r.endedMs > 0 && r.endedMs >= fromMs && r.endedMs <= nowMs);
  const active = mine.filter((r) => r.status === 'pending' || r.status === 'running');
  const names = [...new Set([...ended, ...active].map((r) => r.workflow))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const slice = { fromMs, widthMs: windowMs / buckets, buckets };
  return {
    fromMs,
    toMs: nowMs,
    overall: summarise('', ended, active.length, input.samples, slice),
    workflows: names.map((name) =>
      summarise(
        name,
        ended.filter((r) => r.workflow === name),
        active.filter((r) => r.workflow === name).length,
        input.samples,
        slice,
      ),
    ),
  };
}

/**
 * The in-process service: what the gRPC handler and the HTTP feed call.
 * Checks the query (ApiError INVALID_REQUEST), fills its defaults, reads the
 * store and computes.
 */
export class StatsService {
  constructor(
    private readonly store: Store,
    private readonly now: () => number,
  ) {}

  get(query: StatsQuery = {}): Stats {
    const windowMs = query.windowMs || DEFAULT_WINDOW_MS;
    const buckets = query.buckets || DEFAULT_BUCKETS;
    if (!Number.isInteger(windowMs) || windowMs < 0 || windowMs > MAX_WINDOW_MS) {
      throw new ApiError('INVALID_REQUEST', `window_ms ${query.windowMs} is not between 0 and ${MAX_WINDOW_MS} (366 days)`, 'ask for a window such as 24h (86400000 ms); 0 means 24 h');
    }
    if (!Number.isInteger(buckets) || buckets < 0 || buckets > MAX_BUCKETS) {
      throw new ApiError('INVALID_REQUEST', `buckets ${query.buckets} is not between 0 and ${MAX_BUCKETS}`, 'ask for at most one trend point a minute over a day; 0 means 24');
    }
    const nowMs = this.now();
    const runs = this.store.listRuns();
    // Samples as far back as the oldest run that may count was created.
    let oldest = nowMs;
    for (const r of runs) if (r.endedMs >= nowMs - windowMs && r.createdMs < oldest) oldest = r.createdMs;
    return computeStats({ runs, samples: this.store.fleetSamples(oldest, nowMs), windowMs, workflow: query.workflow ?? '', buckets, nowMs });
  }
}

/** Nearest rank: the smallest value with at least q of them at or below it; 0 for none. `sorted` ascending. */
export function percentile(sorted: readonly number[], q: number): number {
  if (!sorted.length) return 0;
  // The epsilon keeps q*n that is whole in decimal (0.95 * 20) from rounding up past it in binary.
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length - 1e-9))) - 1];
}

/** A step's attempts and how many failed or were lost: its attempt history, or for a record stored before it was kept, every attempt before the current one failed (that is why there was another). */
export function stepAttempts(s: StepRecord): { attempts: number; failed: number } {
  if (s.kind === 'group') return { attempts: 0, failed: 0 };
  if (s.attempts?.length) return { attempts: s.attempts.length, failed: s.attempts.filter((a) => a.status === 'failed' || a.status === 'lost').length };
  if (s.attempt <= 0) return { attempts: 0, failed: 0 };
  return { attempts: s.attempt, failed: s.attempt - 1 + (s.status === 'failed' ? 1 : 0) };
}

interface Slices {
  fromMs: number;
  widthMs: number;
  buckets: number;
}

function summarise(workflow: string, ended: readonly RunRecord[], activeCount: number, samples: readonly FleetSample[], slice: Slices): WorkflowStats {
  const count = (status: RunRecord['status']) => ended.filter((r) => r.status === status).length;
  const succeeded = count('succeeded');
  const failed = count('failed');
  const cycles = ended.map(cycleMs).sort((a, b) => a - b);
  let attempts = 0;
  let attemptsFailed = 0;
  let cpuSeconds = 0;
  let peakRssBytes = 0;
  for (const run of ended) {
    for (const step of Object.values(run.steps)) {
      const a = stepAttempts(step);
      attempts += a.attempts;
      attemptsFailed += a.failed;
      cpuSeconds += step.cpuSeconds;
      peakRssBytes = Math.max(peakRssBytes, step.peakRssBytes);
    }
  }
  const fleet = fleetWhileRunning(ended, samples);
  return {
    workflow,
    runsEnded: ended.length,
    runsSucceeded: succeeded,
    runsFailed: failed,
    runsCancelled: count('cancelled'),
    runsActive: activeCount,
    completionRate: ratio(succeeded, ended.length),
    cycleP50Ms: percentile(cycles, 0.5),
    cycleP95Ms: percentile(cycles, 0.95),
    cycleMaxMs: cycles.length ? cycles[cycles.length - 1] : 0,
    attempts,
    attemptsFailed,
    attemptErrorRate: ratio(attemptsFailed, attempts),
    runErrorRate: ratio(failed, ended.length),
    cpuSeconds: Math.round(cpuSeconds * 1e6) / 1e6,
    peakRssBytes,
    fleetCpuPercent: fleet.cpu,
    fleetMemoryPercent: fleet.memory,
    trend: trend(ended, slice),
  };
}

const cycleMs = (r: RunRecord) => Math.max(0, r.endedMs - r.createdMs);
const ratio = (n: number, d: number) => (d ? n / d : 0);

/** Each slice of the window: runs that ended in it and their median cycle time. */
function trend(ended: readonly RunRecord[], slice: Slices): StatsBucket[] {
  const groups: RunRecord[][] = Array.from({ length: slice.buckets }, () => []);
  for (const r of ended) groups[Math.min(slice.buckets - 1, Math.max(0, Math.floor((r.endedMs - slice.fromMs) / slice.widthMs)))].push(r);
  return groups.map((runs, i) => ({
    startMs: Math.round(slice.fromMs + i * slice.widthMs),
    ended: runs.length,
    succeeded: runs.filter((r) => r.status === 'succeeded').length,
    failed: runs.filter((r) => r.status === 'failed').length,
    cycleP50Ms: percentile(runs.map(cycleMs).sort((a, b) => a - b), 0.5),
  }));
}

/** Mean of the samples (with an agent connected) taken while any of the runs ran, each sample once; 0 when none. */
function fleetWhileRunning(runs: readonly RunRecord[], samples: readonly FleetSample[]): { cpu: number; memory: number } {
  const spans = runs.map((r) => [r.createdMs, r.endedMs] as const).sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const [start, end] of spans) {
    const last = merged[merged.length - 1];
    if (last && start <= last[1]) last[1] = Math.max(last[1], end);
    else merged.push([start, end]);
  }
  let n = 0;
  let cpu = 0;
  let memory = 0;
  let i = 0;
  for (const s of samples) {
    if (s.connected <= 0) continue;
    while (i < merged.length && merged[i][1] < s.t) i++;
    if (i === merged.length) break;
    if (s.t < merged[i][0]) continue;
    n++;
    cpu += s.cpuPercent;
    memory += s.memoryPercent;
  }
  return n ? { cpu: round2(cpu / n), memory: round2(memory / n) } : { cpu: 0, memory: 0 };
}

const round2 = (x: number) => Math.round(x * 100) / 100;
