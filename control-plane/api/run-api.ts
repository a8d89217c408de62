/** RunService: submit, inspect, watch and cancel runs; read logs. */
import * as grpc from '@grpc/grpc-js';
import type { LogLine, RunEvent, RunServiceHandlers } from '../../proto/index.js';
import type { GetLogsRequest__Output } from '../../proto/gen/drover/v1/GetLogsRequest.js';
import type { WatchRunRequest__Output } from '../../proto/gen/drover/v1/WatchRunRequest.js';
import type { RunChange } from '../events.js';
import type { Runs } from '../runs.js';
import { didYouMean } from '../../common/workflow/compiler/suggest.js';
import { planIndex } from '../model/plan-index.js';
import type { Approver } from '../approvals.js';
import { ApiError, NotFoundError } from '../errors.js';
import { waitingReason } from '../scheduler/waiting.js';
import { TERMINAL_RUN, TERMINAL_STEP, type LogRecord, type RunRecord, type StepRecord, type Store } from '../store/store.js';
import { attemptNumber, fromRunStatus, launchedInfo, toLogLine, toRunInfo, toStepInfo } from './convert.js';
import { toServiceError, unary } from './grpc-errors.js';
import { watchRuns } from './watch-runs.js';

/** How often a run's watcher looks again at the waiting reasons of steps whose agents changed state. */
const AGENT_PASS_MS = 100;

/** The caller of an API call, from its authenticated token (approvers are checked against it). */
export type Identify = (metadata: grpc.Metadata) => Approver;

export function runService(runs: Runs, store: Store, identify?: Identify): RunServiceHandlers {
  /** A log line's step record: its history numbers the line's attempt. */
  const stepOf = (runId: string, stepId: string) => store.getRun(runId)?.steps[stepId];

  /**
   * Streams past records then live changes, with no gap and no repeat. Past
   * records are read a page at a time (Store.readLogPage), waiting for the
   * client to take each. Meanwhile a live line is dropped (it is stored, and
   * a later page reads it) and any other change is held: it is sent once the
   * pages have caught up, after every line stored before it. The stream goes
   * live in the same tick as it reads a page that reached the end of the
   * log, so every line stored after that arrives live, once.
   */
  const stream = <T>(
    call: grpc.ServerWritableStream<{ id?: string; runId?: string }, T>,
    runId: string,
    opts: { logs: boolean; stepId?: string; attempt?: number; follow: boolean; snapshot: boolean },
    render: (c: RunChange | { type: 'past'; run: RunRecord; log: LogRecord }) => T | undefined,
  ) => {
    let run: RunRecord;
    try {
      run = runs.get(runId);
      // The caller may have given a unique prefix: from here on, the whole id.
      runId = run.id;
      if (opts.stepId && !run.steps[opts.stepId]) throw unknownStep(run, opts.stepId);
    } catch (err) {
      // 'error', not destroy(): grpc-js sends the status from its error handler; a destroyed stream never sends one (the caller hung until its deadline).
      return void call.emit('error', Object.assign(new Error((err as Error).message), toServiceError(err)));
    }
    const held: RunChange[] = [];
    let live = false;
    let closed = false;
    const write = (c: Parameters<typeof render>[0]) => {
      if (c.type === 'log') {
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
          if (!live) return void (c.type !== 'log' && held.push(c));
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
      // Without follow: the records there were when asked (and the rest of the last page).
      let until = Infinity;
      for (let from = 0; opts.logs && !closed; ) {
        const page = store.readLogPage(runId, { from, filter: { step: opts.stepId || undefined, attempts: opts.attempt ? attemptIds(run, opts.stepId, opts.attempt) : undefined } });
        for (const log of page.records) write({ type: 'past', run, log });
        if (!opts.follow) until = Math.min(until, page.size);
        if (page.next >= Math.min(until, page.size)) break;
        from = page.next;
        await taken(call);
      }
      if (closed) return;
      live = true;
      for (const c of held) write(c);
      if (!opts.follow || TERMINAL_RUN.has(run.status)) finish();
    })().catch((err: unknown) => call.emit('error', Object.assign(new Error((err as Error).message), toServiceError(err))));
  };

  return {
    SubmitRun: unary(async (req) => {
      const l = await runs.launch({ source: req.source, filename: req.filename, workflowRef: req.workflowRef, params: req.params, expectPlanHash: req.expectPlanHash, idempotencyKey: req.idempotencyKey });
      return launchedInfo(l, runs.waitingView());
    }),
    GetRun: unary((req) => toRunInfo(runs.get(req.id), runs.waitingView())),
    ListRuns: unary((req) => {
      const view = runs.waitingView();
      return {
        runs: runs.list({ limit: req.limit, workflow: req.workflow, status: fromRunStatus(req.status) }).map((run) => toRunInfo(run, view)),
      };
    }),
    CancelRun: unary((req) => runs.cancel(req.id, req.reason).then((run) => toRunInfo(run, runs.waitingView()))),
    WatchRun(call: grpc.ServerWritableStream<WatchRunRequest__Output, RunEvent>) {
      // The caller may have given a unique prefix: from here on, the whole id (an unknown one: stream() reports it).
      let id = call.request.id;
      try {
        id = runs.get(id).id;
      } catch {
        // reported below
      }
      // The waiting reason each step was last sent with. A reason can change without its step changing (an
      // agent went away, a need finished): those steps are sent again, once the snapshot has named them.
      const sent = new Map<string, string>();
      const stepInfo = (run: RunRecord, step: StepRecord, view = runs.waitingView()) => {
        const info = toStepInfo(run, step, view);
        sent.set(step.id, info.waiting ?? '');
        return info;
      };
      const resend = (steps: Iterable<StepRecord>) => {
        const run = store.getRun(id);
        if (call.writableEnded || call.destroyed || !run || TERMINAL_RUN.has(run.status)) return;
        const view = runs.waitingView();
        for (const step of steps) {
          if (TERMINAL_STEP.has(step.status) || !sent.has(step.id)) continue;
          if (waitingReason(run, step, view) !== sent.get(step.id)) call.write({ step: stepInfo(run, step, view) });
        }
      };
      // Agents whose state changed are collected and the run's steps walked once per AGENT_PASS_MS, however
      // many changed: 10,000 agents reconnecting must not each walk a 10,000-step run (heartbeats land here too).
      const agentStates = new Map<string, string>();
      const changed = new Set<string>();
      let pass: NodeJS.Timeout | undefined;
      const walk = () => {
        pass = undefined;
        const agents = new Set(changed);
        changed.clear();
        const run = store.getRun(id);
        if (run && !TERMINAL_RUN.has(run.status)) resend(Object.values(run.steps).filter((s) => agents.has(s.agent)));
      };
      const offAgents = runs.onAgentChange((agent, state) => {
        if (call.writableEnded || call.destroyed) return end();
        if (agentStates.get(agent) === state) return;
        agentStates.set(agent, state);
        changed.add(agent);
        pass ??= setTimeout(walk, AGENT_PASS_MS);
      });
      let over = false;
      const end = () => {
        over = true;
        offAgents();
        clearTimeout(pass);
      };
      for (const e of ['close', 'cancelled', 'finish', 'error']) call.once(e, end);
      stream(call, id, { logs: call.request.includeLogs, follow: true, snapshot: true }, (c): RunEvent => {
        if (c.type === 'run') {
          const info = toRunInfo(c.run, runs.waitingView());
          for (const s of info.steps ?? []) sent.set(s.id ?? '', s.waiting ?? '');
          return { run: info };
        }
        if (c.type === 'step') return { step: stepInfo(c.run, c.step) };
        return { log: toLogLine(id, c.log, stepOf(id, c.log.step)) };
      });
      // Subscribed after the stream's own: a step's change goes out before the new reasons of what follows it.
      const offSteps = runs.topics.subscribe(id, (c) => {
        if (c.type !== 'step') return;
        const index = planIndex(c.run.plan);
        const next = [...index.dependents(c.step.id), ...(c.step.parent ? index.dependents(c.step.parent) : []), ...index.finals];
        resend(new Set(next.map((s) => c.run.steps[s.id]).filter(Boolean)));
      });
      // An unknown run ends the call inside stream(), before this subscription existed.
      if (over) offSteps();
      else for (const e of ['close', 'cancelled', 'finish', 'error']) call.once(e, offSteps);
    },
    GetLogs(call: grpc.ServerWritableStream<GetLogsRequest__Output, LogLine>) {
      const { runId, stepId, follow, attempt } = call.request;
      stream(call, runId, { logs: true, stepId, attempt, follow, snapshot: false }, (c) =>
        c.type === 'log' || c.type === 'past' ? toLogLine(c.run.id, c.log, stepOf(c.run.id, c.log.step)) : undefined,
      );
    },
    WatchRuns: watchRuns(runs),
    DecideApproval(call, callback) {
      const req = call.request;
      Promise.resolve()
        .then(() => {
          if (!identify) throw new ApiError('INTERNAL', 'this control plane cannot tell who calls, so it takes no approvals');
          return runs.decideApproval(req.runId, req.stepId, req.approve, req.reason.trim(), identify(call.metadata));
        })
        .then(
          (run) => callback(null, toRunInfo(run, runs.waitingView())),
          (err: unknown) => callback(toServiceError(err) as grpc.ServiceError),
        );
    },
    RerunRun: unary((req) =>
      runs
        .rerun(req.id, { fromStep: req.fromStep, failedOnly: req.failedOnly, idempotencyKey: req.idempotencyKey })
        .then(({ run, deduplicated }) => ({ ...toRunInfo(run, runs.waitingView()), deduplicated })),
    ),
  };
}

/** STEP_NOT_FOUND for a step id `run` does not have, with the closest one and the run's declared steps. */
function unknownStep(run: RunRecord, stepId: string): NotFoundError {
  const ids = Object.keys(run.steps);
  const declared = ids.filter((id) => !run.steps[id].parent);
  const shown = declared.length > 20 ? `${declared.slice(0, 20).join(', ')}, … (${declared.length - 20} more)` : declared.join(', ');
  return new NotFoundError('STEP_NOT_FOUND', `run ${run.id} has no step "${stepId}"${didYouMean(stepId, ids)}`, `its steps: ${shown || 'none'}; \`drover status ${run.id}\` lists them with fan-out instances`);
}

/** The ids of each step's `n`-th attempt (`drover logs --attempt N`), of one step or all. */
function attemptIds(run: RunRecord, stepId: string | undefined, n: number): Set<string> {
  const steps = stepId ? [run.steps[stepId]].filter(Boolean) : Object.values(run.steps);
  return new Set(steps.flatMap((s) => (s.attempts ?? []).filter((a) => a.n === n).map((a) => a.id)));
}

/** Resolves once the client has taken what was written (at once when it has), or is gone; after a turn of the event loop either way. */
function taken(call: grpc.ServerWritableStream<unknown, unknown>): Promise<void> {
  return new Promise((resolve) => {
    if (!call.writableNeedDrain) return void setImmediate(resolve);
    const done = () => {
      for (const e of ['drain', 'cancelled', 'close']) call.off(e, done);
      resolve();
    };
    for (const e of ['drain', 'cancelled', 'close']) call.once(e, done);
  });
}
