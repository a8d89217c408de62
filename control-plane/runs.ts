/**
 * Runs, the service: the thin driver of the run machine
 * (scheduler/run-machine.ts). It compiles and places a submitted workflow,
 * writes a new run durably before the machine may act on it, turns agent
 * messages, API calls, timers and sweeps into machine events, and performs
 * the effects that come back: store writes, messages to agents (converted
 * by wire.ts), deadline timers, notifications to watchers and log lines.
 */
import { randomBytes } from 'node:crypto';
import type { StepEventOut } from '../proto/index.js';
import { approverName, checkDecision, type Approver } from './approvals.js';
import { compile } from '../common/workflow/compiler/compile.js';
import type { RunPlan } from '../common/workflow/model/plan.js';
import { ApiError, InvalidParamsError, InvalidWorkflowError, NotFoundError } from './errors.js';
import { RunTopics, Topic } from './events.js';
import type { Fleet } from './fleet.js';
import { PeerLog, type Logger } from './log.js';
import { rerun, rerunModeText, type Rerun, type RerunOptions } from './rerun.js';
import { TERMINAL_RUN, type RunRecord } from './model/run.js';
import { silentFor } from './scheduler/agent-policy.js';
import { anyWaitingForCapacity } from './scheduler/capacity.js';
import type { Placement } from '../common/workflow/placement/placement.js';
import { placeRun } from '../common/workflow/placement/place-run.js';
import type { WaitingView } from './scheduler/waiting.js';
import { admission, deviceAffinity, initialState, newRun, step, type Effect, type LogLines, type RunEvent, type RunsState } from './scheduler/run-machine.js';
import type { RunSecrets } from './secrets.js';
import type { Store } from './store/store.js';
import { flushOrUndo, requireWritable } from './store-guard.js';
import { fromStepEvent, toAssign, toCancel, toRelease } from './wire.js';
import type { Workflows } from './workflows.js';
import { checkIdempotencyKey, LaunchKeys, paramsHash, type Launched } from './launch-keys.js';

export interface SubmitRequest {
  /** The document, or empty when `workflowRef` names a registered one. */
  source: string;
  filename: string;
  workflowRef?: string;
  params: Record<string, string>;
  expectPlanHash?: string;
  /** What starts it (RunRecord.trigger); default "api". */
  trigger?: string;
  /** A repeated key (same workflow, within the retention window) starts nothing and answers the first run. */
  idempotencyKey?: string;
}

export interface Compiled {
  plan: RunPlan;
  placement: Placement;
  version: number;
  problems: InvalidWorkflowError['problems'];
  /** Why a run of this plan would be refused now (NO_MATCHING_AGENT): steps no usable agent can take and that may not wait (target.wait). */
  blockers: InvalidWorkflowError['problems'];
  /** Values of secret params (never part of the plan). */
  secretParams: Record<string, string>;
}

export class Runs {
  readonly topics = new RunTopics();
  /** Every run that ends, once. */
  readonly ended = new Topic<RunRecord>();
  /** Stored secrets and secret params (absent: runs may use neither). */
  secrets: RunSecrets | undefined;
  /** Idempotency keys of launches (main.ts replaces it to set --idempotency-retention). */
  keys: LaunchKeys;
  private state: RunsState;
  private deadlines = new Map<string, NodeJS.Timeout>();
  /** Open approval gates' timers, by `runId/stepId`. */
  private gateTimers = new Map<string, NodeJS.Timeout>();
  /** Lines an agent's messages cause, limited per agent. */
  private peerLog: PeerLog;

  constructor(
    private readonly store: Store,
    private readonly fleet: Fleet,
    private readonly workflows: Workflows,
    private readonly log: Logger,
    private readonly now: () => number,
    /** For messages: how long an agent is silent before it counts as lost. */
    lostAfterMs = 60_000,
    /** How long past its timeout the control plane waits for a step's result before failing it itself. */
    stepDeadlineSlackMs = 60_000,
  ) {
    this.peerLog = new PeerLog(log, now);
    this.state = initialState({ lostAfterMs, stepDeadlineSlackMs });
    this.keys = new LaunchKeys(store, now);
    this.watchDraining();
  }

  /** An agent that stops draining is capacity for steps waiting for one (target.wait); a Hello is told by agentConnected. */
  private watchDraining() {
    const draining = new Map(this.fleet.list().map((a) => [a.record.name, a.record.draining]));
    this.fleet.changes.subscribe((a) => {
      const was = draining.get(a.record.name);
      draining.set(a.record.name, a.record.draining);
      if (was && !a.record.draining && a.state !== 'lost') this.capacity();
    });
  }

  /** After a restart: re-arm deadlines and start queued runs whose turn it is. */
  resume() {
    this.keys.restore(this.store.listRuns());
    this.handle({ type: 'resume', runs: this.store.listRuns() });
  }

  /**
   * A run by its id or a unique prefix of it (at least MIN_RUN_ID_PREFIX
   * characters), as GetRun, WatchRun, CancelRun and GetLogs take it.
   * Throws RUN_NOT_FOUND, or AMBIGUOUS_RUN_ID naming some of the candidates.
   */
  get(id: string): RunRecord {
    const run = this.store.getRun(id) ?? this.byPrefix(id);
    if (!run) throw new NotFoundError('RUN_NOT_FOUND', `no run with id "${id}"`, 'list runs with `drover runs`');
    return run;
  }

  private byPrefix(prefix: string): RunRecord | undefined {
    if (prefix.length < MIN_RUN_ID_PREFIX) {
      throw new ApiError('INVALID_INPUT', `run id "${prefix}" is too short: give the whole id or at least ${MIN_RUN_ID_PREFIX} characters of it`, 'list runs with `drover runs`');
    }
    const matches = this.store.listRuns().filter((r) => r.id.startsWith(prefix));
    if (matches.length <= 1) return matches[0];
    const shown = matches.slice(0, AMBIGUOUS_SHOWN).map((r) => r.id);
    const more = matches.length > shown.length ? ` and ${matches.length - shown.length} more` : '';
    throw new ApiError('AMBIGUOUS_RUN_ID', `run id prefix "${prefix}" matches ${matches.length} runs: ${shown.join(', ')}${more}`, 'give more characters of the id');
  }

  /** The fleet and queue now, for the waiting reasons the API puts on unfinished steps (scheduler/waiting.ts). */
  waitingView(): WaitingView {
    return {
      now: this.now(),
      lostAfterMs: this.state.config.lostAfterMs,
      agent: (name) => {
        const a = this.fleet.get(name);
        return a && { state: a.state, draining: a.record.draining, heardMs: a.heardMs };
      },
      blockerOf: (run) =>
        [...this.state.active.values()].find((r) => r.workflow === run.workflow && r.id !== run.id && r.status === 'running') ??
        [...this.state.active.values()].find((r) => r.workflow === run.workflow && r.id !== run.id && r.createdMs < run.createdMs),
    };
  }

  /**
   * Calls `fn` with an agent's name and its state ("connected", "disconnected/draining", ...) whenever
   * anything of it changes, heartbeats included (a step's waiting reason may change with its state).
   */
  onAgentChange(fn: (agent: string, state: string) => void): () => void {
    return this.fleet.changes.subscribe((a) => fn(a.record.name, `${a.state}${a.record.draining ? '/draining' : ''}`));
  }

  list(filter: { limit?: number; workflow?: string; status?: string }): RunRecord[] {
    let runs = this.store.listRuns();
    if (filter.workflow) runs = runs.filter((r) => r.workflow === filter.workflow);
    if (filter.status) runs = runs.filter((r) => r.status === filter.status);
    return runs.slice(0, filter.limit && filter.limit > 0 ? filter.limit : 50);
  }

  /** Whether a run is pending or running. */
  isActive(id: string): boolean {
    return this.state.active.has(id);
  }

  /** Compiles a request against the fleet now; throws INVALID_WORKFLOW with every problem. */
  compile(req: Omit<SubmitRequest, 'expectPlanHash'>): Compiled {
    let { source, filename } = req;
    let version = 0;
    if (req.workflowRef) {
      const v = this.workflows.get(req.workflowRef);
      ({ source, filename } = v);
      filename = `${v.name}@${v.version}`;
      version = v.version;
    }
    const fleet = this.fleet.snapshot();
    const { plan, problems, secretParams = {}, invalidParams } = compile({ source, params: req.params, fleet, devices: this.store.listDevices(), secrets: this.secrets?.names() ?? [] });
    if (!plan) throw invalidParams ? new InvalidParamsError(filename || 'workflow', problems) : new InvalidWorkflowError(filename || 'workflow', problems);
    const { placement, waiting, blockers } = placeRun(plan, fleet, deviceAffinity(this.state));
    problems.push(...waiting);
    return { plan, placement, version, problems, blockers, secretParams };
  }

  /**
   * Starts a run, or, for an idempotency key seen before (same workflow,
   * within the retention window), answers the run it started (launch-keys.ts).
   * Throws INVALID_INPUT for a malformed key and IDEMPOTENCY_KEY_REUSED for
   * the same key with other params, besides what a submit throws.
   */
  async launch(req: SubmitRequest): Promise<Launched> {
    const key = req.idempotencyKey ?? '';
    if (key) checkIdempotencyKey(key);
    const compiled = this.compile(req);
    if (key) return this.keys.once(compiled.plan.workflow, key, paramsHash(compiled.plan), () => this.start(req, compiled, key));
    const run = await this.start(req, compiled, '');
    return { runId: run.id, workflow: run.workflow, run, deduplicated: false };
  }

  /** launch(), answering the run itself; a repeated key whose first run was pruned since is RUN_NOT_FOUND. */
  async submit(req: SubmitRequest): Promise<RunRecord> {
    const l = await this.launch(req);
    if (l.run) return l.run;
    throw new NotFoundError('RUN_NOT_FOUND', `idempotency key "${req.idempotencyKey}" started run ${l.runId} of ${l.workflow}, which is no longer kept; nothing was started`);
  }

  private async start(req: SubmitRequest, compiled: Compiled, key: string): Promise<RunRecord> {
    const { plan, placement, version, secretParams, blockers: unplaced } = compiled;
    if (req.expectPlanHash && req.expectPlanHash !== plan.hash) {
      throw new ApiError(
        'PLAN_CHANGED',
        `the plan changed since it was previewed (expected hash ${req.expectPlanHash.slice(0, 12)}, now ${plan.hash.slice(0, 12)})`,
        'preview it again with `drover plan` and run with the new hash',
      );
    }
    if (unplaced.length) {
      throw new ApiError(
        'NO_MATCHING_AGENT',
        unplaced.map((p) => `${p.path}: ${p.message}`).join('; '),
        "start an agent with matching --label flags, or change the step's target; nothing was started",
        unplaced,
      );
    }
    const admit = admission(this.state, plan);
    if (admit.decision === 'skip') {
      const active = admit.blocker;
      throw new ApiError(
        'RUN_SKIPPED',
        `run ${active.id} of ${plan.workflow} is still ${active.status} and the workflow has concurrency: skip; no new run was started`,
        `wait for it (drover status ${active.id}) or cancel it (drover cancel ${active.id})`,
      );
    }
    const run = newRun(this.uniqueRunId(), plan, placement, version, admit.decision === 'queue', this.now());
    run.trigger = req.trigger ?? 'api';
    if (key) run.idempotencyKey = key;
    if (Object.keys(secretParams).length) {
      if (!this.secrets) throw new ApiError('INVALID_PARAMS', 'this control plane has no secret key, so it cannot take secret params');
      run.sealedParams = this.secrets.sealParams(run.id, secretParams);
    }
    return this.startDurably(run, key);
  }

  /** A new run of a finished run's plan, reusing what `opts` allows (control-plane/rerun.ts). */
  async rerun(id: string, opts: RerunOptions): Promise<Rerun> {
    const key = opts.idempotencyKey ?? '';
    const host = {
      get: (i: string) => this.get(i),
      state: this.state,
      fleet: () => this.fleet.snapshot(),
      newId: () => this.uniqueRunId(),
      now: this.now,
      start: (run: RunRecord) => this.startDurably(run, key),
    };
    if (!key) return rerun(host, id, opts);
    checkIdempotencyKey(key);
    const old = this.get(id);
    let l: Launched;
    try {
      l = await this.keys.once(old.workflow, key, paramsHash(old.plan, `${old.id} ${rerunModeText(opts)}`), async () => (await rerun(host, old.id, opts)).run);
    } catch (err) {
      if (!(err instanceof ApiError) || err.code !== 'IDEMPOTENCY_KEY_REUSED') throw err;
      const first = this.store.getLaunchKey(old.workflow, key)?.runId ?? '';
      throw new ApiError('IDEMPOTENCY_KEY_REUSED', `idempotency key "${key}" of ${old.workflow} already started run ${first}, which is not this re-run of ${old.id} (${rerunModeText(opts)}); nothing was started`, 'use a new key for a different request');
    }
    if (!l.run) throw new NotFoundError('RUN_NOT_FOUND', `idempotency key "${key}" started run ${l.runId} of ${l.workflow}, which is no longer kept; nothing was started`);
    return { run: l.run, deduplicated: l.deduplicated };
  }

  /**
   * Writes a new run (and its idempotency key, in the same flush), then lets
   * the machine start or queue it: the second half of a submit, which
   * re-runs share.
   */
  private async startDurably(run: RunRecord, key: string): Promise<RunRecord> {
    requireWritable(this.store, 'no run was started');
    // Active (seen by agent events, reconnects and sweeps, so dispatched) only once it is durable.
    this.handle({ type: 'submitting', run });
    // Put after the run: the store writes it after the run too, so a torn write never keeps a key without its run.
    if (key) this.keys.record(run, key);
    try {
      await flushOrUndo(this.store, 'no run was started', () => {
        this.store.discardRun(run.id);
        if (key) this.store.deleteLaunchKey(run.workflow, key);
      });
    } catch (err) {
      this.handle({ type: 'submitFailed', runId: run.id });
      this.log.warn({ run: run.id, workflow: run.workflow, err: (err as Error).message }, 'run not started: its record could not be written');
      throw err;
    }
    this.handle({ type: 'submitted', runId: run.id });
    return run;
  }

  /** A run id no kept run has (a repeated id would overwrite that run, and agents would take it for the old one). */
  private uniqueRunId(): string {
    const now = this.now();
    let id = newRunId(now);
    while (this.store.getRun(id)) id = newRunId(now);
    return id;
  }

  /** An agent (re)connected, running these attempts (see agentConnected in scheduler/agent-policy.ts). */
  agentConnected(agent: string, runningAttempts: string[] = []) {
    const attempts = runningAttempts.map((id) => ({ id, run: this.store.getRun(id.split('/')[0]) }));
    this.handle({ type: 'agentConnected', agent, attempts });
    this.capacity();
  }

  /** The fleet gained capacity: waiting steps are placed (the fleet's snapshot taken only when a step waits). */
  private capacity() {
    if (anyWaitingForCapacity(this.state.active.values())) this.handle({ type: 'capacity', fleet: this.fleet.snapshot() });
  }

  /** An agent was silent past lostAfter (or was revoked): its unfinished steps follow their workflow's onAgentLost policy. */
  agentLost(agent: string, cause = silentFor(this.state.config.lostAfterMs)) {
    this.handle({ type: 'agentLost', agent, cause, fleet: this.fleet.snapshot() });
  }

  /** The step-deadline backstop (once a second). */
  sweepDeadlines() {
    this.handle({ type: 'sweep' });
  }

  applyStepEvent(agent: string, ev: StepEventOut) {
    const report = fromStepEvent(ev);
    if (report) this.handle({ type: 'report', agent, run: this.store.getRun(report.runId), report });
  }

  /** Stores a chunk's lines (cut, and chunks stored before dropped, by the session layer: log-intake.ts). */
  applyLog(agent: string, log: LogLines) {
    this.handle({ type: 'log', agent, run: this.store.getRun(log.runId), log });
  }

  async cancel(id: string, reason: string): Promise<RunRecord> {
    const run = this.get(id);
    if (TERMINAL_RUN.has(run.status)) {
      throw new ApiError('RUN_FINISHED', `run ${run.id} already ${run.status}; there is nothing to cancel`);
    }
    this.handle({ type: 'cancel', runId: run.id, reason });
    // Not refused on a failing disk (cancelling a step that fills it is how one gets out): the agents have the
    // cancel and report their steps cancelled, unacknowledged until the store writes again; so does the record.
    await this.store.flush().catch((err: unknown) => {
      this.log.warn({ run: run.id, err: (err as Error).message }, 'run cancelled, but not on disk yet: the store writes it once the data dir can be written');
    });
    return run;
  }

  /**
   * An approver's decision on an approval gate (approvals.ts checks who and
   * when). Answers once the decision is on disk.
   */
  async decideApproval(id: string, stepId: string, approve: boolean, reason: string, by: Approver): Promise<RunRecord> {
    const run = this.get(id);
    checkDecision(run, stepId, by, reason, this.now());
    requireWritable(this.store, 'nothing was decided');
    this.handle({ type: 'decide', runId: run.id, stepId, approve, by: approverName(by), reason });
    // The machine acted on it already (dependents may be on their way): say so, rather than that nothing happened.
    await flushOrUndo(this.store, 'the decision took effect but is not on disk yet; it is written once a write succeeds, and is lost only if the control plane stops before then');
    return run;
  }

  /** Runs the machine on one event and performs its effects, in order (and the events they feed back). */
  private handle(event: RunEvent) {
    const queue: RunEvent[] = [event];
    for (let ev = queue.shift(); ev; ev = queue.shift()) {
      for (const effect of step(this.state, ev, this.now()).effects) {
        const back = this.perform(effect);
        if (back) queue.push(back);
      }
    }
  }

  private perform(e: Effect): RunEvent | undefined {
    switch (e.type) {
      case 'persist':
        this.store.putRun(e.run, e.steps);
        break;
      case 'assign': {
        const secrets = this.secrets;
        const { run, agent } = e.order;
        this.fleet.send(agent, { assign: toAssign(e.order, secrets && ((s) => secrets.forStep(run, s, agent))) });
        break;
      }
      case 'release':
        this.fleet.send(e.agent, { release: toRelease(e.run, e.step, e.tolerated) });
        break;
      case 'cancel': {
        const sent = this.fleet.send(e.agent, { cancel: toCancel(e.runId, e.stepId, e.reason) });
        if (!sent && e.reportUndelivered) return { type: 'undelivered', runId: e.runId, agent: e.agent };
        break;
      }
      case 'setTimer': {
        if (this.deadlines.has(e.runId)) break;
        const timer = setTimeout(() => {
          this.deadlines.delete(e.runId);
          this.handle({ type: 'deadline', runId: e.runId });
        }, Math.max(0, e.atMs - this.now()));
        timer.unref();
        this.deadlines.set(e.runId, timer);
        break;
      }
      case 'clearTimer':
        clearTimeout(this.deadlines.get(e.runId));
        this.deadlines.delete(e.runId);
        break;
      case 'setApprovalTimer': {
        const key = `${e.runId}/${e.stepId}`;
        clearTimeout(this.gateTimers.get(key));
        const timer = setTimeout(() => {
          this.gateTimers.delete(key);
          this.handle({ type: 'approvalTimeout', runId: e.runId, stepId: e.stepId });
        }, Math.max(0, e.atMs - this.now()));
        timer.unref();
        this.gateTimers.set(key, timer);
        break;
      }
      case 'clearApprovalTimer':
        clearTimeout(this.gateTimers.get(`${e.runId}/${e.stepId}`));
        this.gateTimers.delete(`${e.runId}/${e.stepId}`);
        break;
      case 'notify':
        this.topics.publish(e.change);
        break;
      case 'appendLog':
        this.store.appendLog(e.run.id, ...e.records);
        break;
      case 'ended':
        this.ended.publish(e.run);
        break;
      case 'log':
        if (e.peer) this.peerLog[e.level === 'info' ? 'info' : 'warn'](e.peer, e.fields, e.msg);
        else this.log[e.level](e.fields, e.msg);
        break;
    }
    return undefined;
  }
}

/**
 * Sortable, readable run ids: r-YYMMDD-HHMMSS-xxxxxxxx (UTC). Four random
 * bytes: with two, runs started in the same second collided often enough to
 * matter at tens of runs a second (the benchmark's throughput figure found it).
 */
/** Shorter run id prefixes are refused: they would match nearly every run (ids start `r-YYMMDD`). */
export const MIN_RUN_ID_PREFIX = 4;

/** How many candidates an AMBIGUOUS_RUN_ID message names. */
const AMBIGUOUS_SHOWN = 5;

export function newRunId(now: number): string {
  const d = new Date(now).toISOString();
  return `r-${d.slice(2, 4)}${d.slice(5, 7)}${d.slice(8, 10)}-${d.slice(11, 13)}${d.slice(14, 16)}${d.slice(17, 19)}-${randomBytes(4).toString('hex')}`;
}
