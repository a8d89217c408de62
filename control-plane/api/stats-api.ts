/** StatsService: the four orchestration metrics (docs/metrics.md). */
import type { StatsServiceHandlers } from '../../proto/index.js';
import type { StatsService } from '../metrics/stats.js';
import { unary } from './grpc-errors.js';

export function statsService(stats: StatsService): StatsServiceHandlers {
  return {
    GetStats: unary((req) => stats.get({ workflow: req.workflow, windowMs: req.windowMs, buckets: req.buckets })),
  };
}
