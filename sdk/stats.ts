import { parseDuration } from '../common/duration.js';
import type { StatsOut } from '../proto/index.js';
import type { Connection } from './connection.js';
import { toStats } from './convert.js';
import { InvalidInputError } from './errors.js';
import type { Stats } from './types.js';

export interface GetStatsOptions {
  /** Only this workflow (overall is then that workflow too). Default: every workflow. */
  workflow?: string;
  /** The window: ms, or a duration such as '24h', '30m', '7d'. Default 24 h. */
  since?: number | string;
  /** Trend slices over the window. Default 24. */
  buckets?: number;
}

/** The four orchestration metrics, computed by the control plane from its stored history (docs/metrics.md). Viewer role. */
export class StatsApi {
  /** @internal */
  constructor(private readonly conn: Connection) {}

  /** Completion rate, cycle time, error rates and resource use over the window, per workflow and overall. */
  async get(options: GetStatsOptions = {}): Promise<Stats> {
    const req = { workflow: options.workflow ?? '', windowMs: windowMs(options.since), buckets: options.buckets ?? 0 };
    return toStats(await this.conn.unary<StatsOut>((cb) => this.conn.stats.getStats(req, cb)));
  }
}

/** `since` as ms: a positive number of ms, or a duration text. */
export function windowMs(since: number | string | undefined): number {
  if (since === undefined) return 0;
  const ms = typeof since === 'number' ? since : parseDuration(since);
  if (ms === undefined || !Number.isFinite(ms) || ms <= 0) {
    throw new InvalidInputError(`since ${JSON.stringify(since)} is not a window: give ms (a positive number) or a duration such as '24h', '30m' or '7d'`, { hint: "for example stats.get({ since: '24h' })" });
  }
  return Math.round(ms);
}
