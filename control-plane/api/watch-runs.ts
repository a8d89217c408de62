/**
 * RunService.WatchRuns: the runs list, live. A snapshot of the runs matching
 * the filter, then each changed run, coalesced per batch interval: a fan-out
 * to a thousand agents changes its run a thousand times a second, and a
 * watcher needs its latest state a few times a second, not every step.
 */
import type * as grpc from '@grpc/grpc-js';
import type { RunInfo } from '../../proto/index.js';
import type { WatchRunsRequest__Output } from '../../proto/gen/drover/v1/WatchRunsRequest.js';
import type { RunRecord } from '../model/run.js';
import type { Runs } from '../runs.js';
import { fromRunStatus, toRunSummary } from './convert.js';

/** Changes are held this long and sent once per run, in the run's latest state. */
export const WATCH_RUNS_BATCH_MS = 200;

export function watchRuns(runs: Runs): grpc.handleServerStreamingCall<WatchRunsRequest__Output, RunInfo> {
  return (call) => {
    const { workflow, limit } = call.request;
    const status = fromRunStatus(call.request.status);
    /** Runs sent that matched `status`: when one stops matching it is sent once more, so the watcher drops it. */
    const shown = new Set<string>();
    const pending = new Map<string, RunRecord>();
    let timer: NodeJS.Timeout | undefined;
    /** The watcher stopped reading (a paused pager): changes wait in `pending`, one per run, until it drains. */
    let full = false;

    const send = (run: RunRecord) => {
      if (workflow && run.workflow !== workflow) return;
      if (status && run.status !== status) {
        if (!shown.delete(run.id)) return;
      } else if (status) shown.add(run.id);
      if (!call.write(toRunSummary(run))) full = true;
    };
    const flush = () => {
      timer = undefined;
      if (full) return;
      const batch = [...pending.values()];
      pending.clear();
      for (const run of batch) send(run);
    };
    call.on('drain', () => {
      full = false;
      if (pending.size) timer ??= setTimeout(flush, WATCH_RUNS_BATCH_MS);
    });
    for (const run of runs.list({ limit, workflow, status })) send(run);
    const off = runs.topics.all.subscribe((c) => {
      pending.set(c.run.id, c.run);
      timer ??= setTimeout(flush, WATCH_RUNS_BATCH_MS);
    });
    const stop = () => {
      off();
      if (timer) clearTimeout(timer);
      timer = undefined;
    };
    call.on('cancelled', stop);
    call.on('close', stop);
  };
}
