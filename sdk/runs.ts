import type { RunInfoOut } from '../proto/index.js';
import type { Connection } from './connection.js';
import { RUN_STATUS_VALUES, runStatusToWire, toLogLine, toRun, toRunEvent } from './convert.js';
import { InvalidInputError } from './errors.js';
import { encodeParams } from './params.js';
import { RunHandle, type RunEventsOptions } from './run-handle.js';
import { withWorkflow } from './source.js';
import { type DecideOptions, type LogLine, type Params, type Run, type RunEvent, type RunStatus, type WorkflowDocument, type WorkflowRef } from './types.js';

/** Options for `runs.launch`. */
export interface LaunchOptions {
  /** Refuse to start (PlanChangedError) unless the compiled plan has this hash. */
  expectPlanHash?: string;
  /**
   * Launch at most once per key: a repeat with the same key (same workflow,
   * within the control plane's retention window, 24 h by default) starts
   * nothing and answers the first run, with `RunHandle.deduplicated` true.
   * The same key with other params rejects with IdempotencyKeyReusedError.
   * 1-200 printable ASCII characters, e.g. a UUID or an event id.
   */
  idempotencyKey?: string;
}

/** Options for `runs.rerun`: without `from` or `failedOnly`, every step runs again. */
export interface RerunOptions {
  /**
   * Run this step (a declared step, a fan-out or forEach step, or one
   * instance such as `deploy[web-2]`) and every step that depends on it
   * again; reuse the outputs of the steps before it that succeeded.
   */
  from?: string;
  /**
   * Run again only what did not succeed (failed, skipped or cancelled steps
   * and fan-out or forEach instances, and what depends on them); reuse every
   * step and instance that succeeded: Rundeck's "retry failed nodes".
   */
  failedOnly?: boolean;
  /** A repeat with the same key starts nothing and answers the first re-run (`run.deduplicated`). */
  idempotencyKey?: string;
}

/** Filters for `runs.list`. */
export interface ListRunsOptions {
  /** At most this many runs, newest first (server default when omitted). */
  limit?: number;
  workflow?: string;
  status?: RunStatus;
}

/** Options for `logs`. */
export interface LogsOptions {
  /** Keep streaming new lines until the run ends. */
  follow?: boolean;
  /**
   * Only the lines of each step's N-th attempt (`Attempt.number`: counted
   * from 1 across agents, so a step moved to another agent has attempts 1
   * and 2 even though each agent numbered its own attempt 1). Omitted or 0:
   * every attempt.
   */
  attempt?: number;
}

/** Launching, inspecting and cancelling runs. */
export class RunsApi {
  /** @internal */
  constructor(private readonly conn: Connection) {}

  /**
   * Submits a workflow with params and starts it. The workflow is a file
   * path, a document object (e.g. from `workflow(...).build()`), or a
   * registered workflow: `{ ref: 'deploy@3' }`, or a string that names no
   * file and reads NAME or NAME@VERSION (see `resolveWorkflow`). Rejects with
   * InvalidWorkflowError, InvalidParamsError, NoMatchingAgentError,
   * PlanChangedError, WorkflowNotFoundError, RunSkippedError,
   * IdempotencyKeyReusedError, InvalidInputError (a malformed key) or
   * UnavailableError (the control plane cannot write its data dir; no run
   * was started) when it cannot start.
   */
  async launch(workflow: string | WorkflowDocument | WorkflowRef, params: Params = {}, options: LaunchOptions = {}): Promise<RunHandle> {
    const encoded = encodeParams(params);
    const info = await withWorkflow(workflow, (resolved) => {
      const request = {
        ...(resolved.kind === 'ref' ? { workflowRef: resolved.ref } : { source: resolved.source, filename: resolved.filename }),
        params: encoded,
        expectPlanHash: options.expectPlanHash ?? '',
        idempotencyKey: options.idempotencyKey ?? '',
      };
      return this.conn.unary<RunInfoOut>((cb) => this.conn.runs.submitRun(request, cb));
    });
    return new RunHandle(this, toRun(info));
  }

  /**
   * Starts a new run of a finished run: its stored plan (the same workflow
   * version, params and plan hash), placed on the fleet now, with the steps
   * `options` allow copied instead of run (`Step.reusedFrom`; fan-out
   * instances that run again run on their agents). `handle.run.rerunOf`
   * names the old run. Rejects with RunNotFoundError, RunNotFinishedError
   * (the run is still going: wait for it or cancel it), StepNotFoundError
   * (`from`), NotRerunnableError (a step that would run again uses a secret
   * param, whose value is not kept after a run ends; or `failedOnly` with
   * nothing failed), NoMatchingAgentError, RunSkippedError, InvalidInputError
   * (`from` with `failedOnly`) or UnavailableError.
   */
  async rerun(id: string, options: RerunOptions = {}): Promise<RunHandle> {
    if (options.from && options.failedOnly) {
      throw new InvalidInputError('from and failedOnly do not go together: failedOnly already reuses every step that succeeded', { hint: 'give one of them' });
    }
    const request = { id, fromStep: options.from ?? '', failedOnly: options.failedOnly ?? false, idempotencyKey: options.idempotencyKey ?? '' };
    return new RunHandle(this, toRun(await this.conn.unary<RunInfoOut>((cb) => this.conn.runs.rerunRun(request, cb))));
  }

  /** One run with its steps, by id or a unique prefix of it (at least 4 characters); rejects with RunNotFoundError or AmbiguousRunIdError. */
  async get(id: string): Promise<Run> {
    return toRun(await this.conn.unary<RunInfoOut>((cb) => this.conn.runs.getRun({ id }, cb)));
  }

  /** Recent runs, newest first. */
  async list(options: ListRunsOptions = {}): Promise<Run[]> {
    const request = listRequest(options);
    const res = await this.conn.unary<{ runs: RunInfoOut[] }>((cb) => this.conn.runs.listRuns(request, cb));
    return res.runs.map(toRun);
  }

  /**
   * Approves an open approval step: it succeeds and the run goes on. The
   * caller's token must be among the step's approvers (PermissionDeniedError
   * names who may decide); ApprovalNotOpenError, ApprovalDecidedError and
   * RunFinishedError say why it cannot be decided now.
   */
  async approve(runId: string, stepId: string, options: DecideOptions = {}): Promise<Run> {
    return this.decide(runId, stepId, true, options);
  }

  /** Rejects an open approval step: it fails ("rejected by NAME: reason"), and the run with it unless it has continueOnError. Errors as for approve(). */
  async reject(runId: string, stepId: string, options: DecideOptions = {}): Promise<Run> {
    return this.decide(runId, stepId, false, options);
  }

  private async decide(runId: string, stepId: string, approve: boolean, options: DecideOptions): Promise<Run> {
    return toRun(await this.conn.unary<RunInfoOut>((cb) => this.conn.runs.decideApproval({ runId, stepId, approve, reason: options.reason ?? '' }, cb)));
  }

  /** Cancels a run; rejects with RunFinishedError if it already ended. */
  async cancel(id: string, reason = ''): Promise<Run> {
    return toRun(await this.conn.unary<RunInfoOut>((cb) => this.conn.runs.cancelRun({ id, reason }, cb)));
  }

  /**
   * With a run id (or a unique prefix of one): a snapshot of the run, then
   * every change until it ends.
   *
   * With a filter (or nothing): the runs list, live, until the loop is left.
   * First each run matching the filter now (newest first, at most `limit`,
   * default 50), then a run each time it changes, in its latest state:
   * without its steps (`steps` is empty; `stepCounts` has their counts), and
   * batched by the server, so a run changing many times a second arrives a
   * few times a second. A run that stops matching `status` arrives once more
   * with its new status, so a view can drop it.
   */
  watch(id: string, options?: RunEventsOptions): AsyncIterableIterator<RunEvent, undefined, undefined>;
  watch(filter?: ListRunsOptions): AsyncIterableIterator<Run, undefined, undefined>;
  watch(target: string | ListRunsOptions = {}, options: RunEventsOptions = {}): AsyncIterableIterator<RunEvent, undefined, undefined> | AsyncIterableIterator<Run, undefined, undefined> {
    if (typeof target === 'string') {
      return this.conn.stream(() => this.conn.runs.watchRun({ id: target, includeLogs: options.logs ?? false }), toRunEvent);
    }
    const request = { ...listRequest(target) };
    return this.conn.stream(() => this.conn.runs.watchRuns(request), toRun);
  }

  /** Resolves with the final run once it is terminal. */
  async wait(id: string): Promise<Run> {
    // Read to the end of the stream (the server ends it right after the run's
    // terminal event) rather than break out: breaking cancels the call, an
    // HTTP/2 stream reset per finished run, and Node's HTTP/2 server closes a
    // connection that resets streams faster than about 33 a second for long
    // (its rapid-reset protection), failing every call on it.
    const events = this.watch(id);
    for (let e = await events.next(); !e.done; e = await events.next()) {
      // Past the terminal event only the end of the stream is left to read.
    }
    return this.get(id);
  }

  /** Log lines of a run (one step, or every step; every attempt, or one), past ones first. */
  logs(runId: string, stepId = '', options: LogsOptions = {}): AsyncIterableIterator<LogLine, undefined, undefined> {
    const attempt = options.attempt ?? 0;
    if (!Number.isInteger(attempt) || attempt < 0) {
      throw new InvalidInputError(`attempt must be a whole number from 1, not ${attempt}`, { hint: 'attempts are numbered as `drover status RUN` lists them' });
    }
    return this.conn.stream(() => this.conn.runs.getLogs({ runId, stepId, follow: options.follow ?? false, attempt }), toLogLine);
  }
}

/** The wire form of a runs filter (ListRuns, WatchRuns); throws InvalidInputError on an unknown status. */
function listRequest(options: ListRunsOptions) {
  if (options.status !== undefined && !RUN_STATUS_VALUES.includes(options.status)) {
    throw new InvalidInputError(`unknown run status "${options.status}"`, { hint: `use one of ${RUN_STATUS_VALUES.join(', ')}` });
  }
  return {
    limit: options.limit ?? 0,
    workflow: options.workflow ?? '',
    status: options.status ? runStatusToWire(options.status) : ('RUN_STATUS_UNSPECIFIED' as const),
  };
}
