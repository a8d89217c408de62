/** RunService: submit, inspect, watch and cancel runs; read logs. */
import * as grpc from '@grpc/grpc-js';
import type { LogLine, RunEvent, RunServiceHandlers } from '../../proto/index.js';
import type { GetLogsRequest__Output } from '../../proto/gen/drover/v1/GetLogsRequest.js';
import type { WatchRunRequest__Output } from '../../proto/gen/drover/v1/WatchRunRequest.js';
import type { RunChange } from '../events.js';
import type { Runs } from '../runs.js';
import { TERMINAL_RUN, type LogRecord, type Store } from '../store/store.js';
import { attemptNumber, toLogLine, toRunInfo, toStepInfo } from './convert.js';
import { toServiceError, unary } from './grpc-errors.js';

export function runService(runs: Runs, store: Store): RunServiceHandlers {
  /** A log line's step record: its history numbers the line's attempt. */
  const stepOf = (runId: string, stepId: string) => store.getRun(runId)?.steps[stepId];

  /**
   * Streams past records then live changes, with no gap and no repeat:
   * subscribe first and buffer live changes; Store.readLogs snapshots at call
   * time, so everything buffered after that call is new.
   */
  const stream = <T>(
    call: grpc.ServerWritableStream<{ id?: string; runId?: string }, T>,
    runId: string,
    opts: { logs: boolean; stepId?: string; attempt?: number; follow: boolean; snapshot: boolean },
    render: (c: RunChange | { type: 'past'; log: LogRecord }) => T | undefined,
  ) => {
    let run;
    try {
      run = runs.get(runId);
    } catch (err) {
      // 'error', not destroy(): grpc-js sends the status from its error handler; a destroyed stream never sends one (the caller hung until its deadline).
      return void call.emit('error', Object.assign(new Error((err as Error).message), toServiceError(err)));
    }
    const buffered: RunChange[] = [];
    let live = false;
    let closed = false;
    const write = (c: Parameters<typeof render>[0]) => {
      if (c.type === 'log' || c.type === 'past') {
        // A notice of an unreadable record that names no step (store/log-files.ts) is shown whatever the step asked for.
        if (!opts.logs || (opts.stepId && c.log.step && c.log.step !== opts.stepId)) return;
        if (opts.attempt && attemptNumber(stepOf(runId, c.log.step), c.log.attempt) !== opts.attempt) return;
      }
      const out = render(c);
      if (out !== undefined) call.write(out);
    };
    const finish = () => {
      if (closed) return;
      closed = true;
      off();
      call.end();
    };
    const off = opts.follow
      ? runs.topics.subscribe(runId, (c) => {
          if (!live) return void buffered.push(c);
          write(c);
          if (c.type === 'run' && TERMINAL_RUN.has(c.run.status)) finish();
        })
      : () => undefined;
    call.on('cancelled', () => {
      closed = true;
      off();
    });
    void (async () => {
      if (opts.snapshot) write({ type: 'run', run });
      const past = opts.logs ? await store.readLogs(runId) : [];
      for (const log of past) write({ type: 'past', log });
      live = true;
      for (const c of buffered) write(c);
      if (!opts.follow || TERMINAL_RUN.has(run.status)) finish();
    })().catch((err: unknown) => call.emit('error', Object.assign(new Error((err as Error).message), toServiceError(err))));
  };

  return {
    SubmitRun: unary((req) =>
      runs
        .submit({ source: req.source, filename: req.filename, workflowRef: req.workflowRef, params: req.params, expectPlanHash: req.expectPlanHash })
        .then(toRunInfo),
    ),
    GetRun: unary((req) => toRunInfo(runs.get(req.id))),
    ListRuns: unary((req) => ({
      runs: runs
        .list({ limit: req.limit, workflow: req.workflow, status: req.status === 'RUN_STATUS_UNSPECIFIED' ? '' : req.status.replace('RUN_STATUS_', '').toLowerCase() })
        .map(toRunInfo),
    })),
    CancelRun: unary((req) => runs.cancel(req.id, req.reason).then(toRunInfo)),
    WatchRun(call: grpc.ServerWritableStream<WatchRunRequest__Output, RunEvent>) {
      stream(call, call.request.id, { logs: call.request.includeLogs, follow: true, snapshot: true }, (c): RunEvent => {
        if (c.type === 'run') return { run: toRunInfo(c.run) };
        if (c.type === 'step') return { step: toStepInfo(c.run, c.step) };
        return { log: toLogLine(call.request.id, c.log, stepOf(call.request.id, c.log.step)) };
      });
    },
    GetLogs(call: grpc.ServerWritableStream<GetLogsRequest__Output, LogLine>) {
      const { runId, stepId, follow, attempt } = call.request;
      stream(call, runId, { logs: true, stepId, attempt, follow, snapshot: false }, (c) =>
        c.type === 'log' || c.type === 'past' ? toLogLine(runId, c.log, stepOf(runId, c.log.step)) : undefined,
      );
    },
  };
}
