/**
 * Runs: submission (compile, place, persist, dispatch), the run and step state
 * machine driven by agents' StepEvents, fan-out groups and their maxParallel
 * and maxFailures rules, releases of cross-agent dependencies, cancellation,
 * deadlines, per-workflow concurrency, and re-dispatch when an agent returns.
 */
import { randomBytes } from 'node:crypto';
import type { LogChunkOut, StepEventOut } from '../proto/index.js';
import { AGENT_LOST, isOwnAttempt, NO_RESULT, recordEvent, recordLate, supersede } from './attempts.js';
import { compile } from './compiler/compile.js';
import { planIndex } from './compiler/plan-index.js';
import type { GroupPlan, RunPlan } from './compiler/plan.js';
import { ApiError, InvalidWorkflowError, NotFoundError } from './errors.js';
import { RunTopics } from './events.js';
import type { Fleet } from './fleet.js';
import { PeerLog, type Logger } from './log.js';
import { RunProgress } from './run-progress.js';
import { deviceKey, place, type Placement } from './scheduler/placement.js';
import { TERMINAL_RUN, TERMINAL_STEP, type RunRecord, type StepRecord, type StepStatus, type Store } from './store/store.js';
import { flushOrUndo, requireWritable } from './store-guard.js';
import { statusForPhase, toAssign, tolerated, toRelease } from './wire.js';
import type { RunSecrets } from './secrets.js';
import type { Workflows } from './workflows.js';

export interface SubmitRequest {
  /** The document, or empty when `workflowRef` names a registered one. */
  source: string;
  filename: string;
  workflowRef?: string;
  params: Record<string, string>;
  expectPlanHash?: string;
}

export interface Compiled {
  plan: RunPlan;
  placement: Placement;
  version: number;
  problems: InvalidWorkflowError['problems'];
  /** Values of secret params (never part of the plan). */
  secretParams: Record<string, string>;
}

const isTerminal = (s: StepRecord) => TERMINAL_STEP.has(s.status);

/** Ended runs whose log seqs stay cached for late lines of superseded attempts (see Runs.rememberLateLogs). */
const LATE_LOG_RUNS = 32;



export class Runs {
  readonly topics = new RunTopics();
  /** Stored secrets and secret params (absent: runs may use neither). */
  secrets: RunSecrets | undefined;
  /** Decoders per attempt and stream, so multi-byte characters split across chunks survive. */
  private decoders = new Map<string, TextDecoder>();
  private deadlines = new Map<string, NodeJS.Timeout>();
  /** Per run and agent, the highest log message seq stored (see applyLog). */
  private logSeqs = new Map<string, Map<string, number>>();
  /** Ended runs that received late log lines, oldest first (see rememberLateLogs). */
  private lateLogRuns: string[] = [];
  /** Lines an agent's messages cause, limited per agent. */
  private peerLog: PeerLog;
  /** Runs pending or running: what agent events, reconnects and sweeps look at (finished runs need nothing). */
  private active = new Map<string, RunRecord>();
  /** Runs submitted whose record is being written: they count for concurrency, nothing else sees them yet. */
  private submitting = new Map<string, RunRecord>();
  /** Counts and indexes of active runs, built on first use. */
  private progress = new Map<string, RunProgress>();

  constructor(
    private readonly store: Store,
    private readonly fleet: Fleet,
    private readonly workflows: Workflows,
    private readonly log: Logger,
    private readonly now: () => number,
    /** For messages: how long an agent is silent before it counts as lost. */
    private readonly lostAfterMs = 60_000,
    /** How long past its timeout the control plane waits for a step's result before failing it itself. */
    private readonly stepDeadlineSlackMs = 60_000,
  ) {
    this.peerLog = new PeerLog(log, now);
  }

  /** After a restart: re-arm deadlines and start queued runs whose turn it is. */
  resume() {
    const runs = this.store.listRuns();
    for (const run of runs) if (run.status === 'running' || run.status === 'pending') this.active.set(run.id, run);
    for (const run of runs) if (run.status === 'running') this.armDeadline(run);
    for (const wf of new Set(runs.filter((r) => r.status === 'pending').map((r) => r.workflow))) this.startQueued(wf);
  }

  get(id: string): RunRecord {
    const run = this.store.getRun(id);
    if (!run) throw new NotFoundError('RUN_NOT_FOUND', `no run with id "${id}"`, 'list runs with `drover runs`');
    return run;
  }

  list(filter: { limit?: number; workflow?: string; status?: string }): RunRecord[] {
    let runs = this.store.listRuns();
    if (filter.workflow) runs = runs.filter((r) => r.workflow === filter.workflow);
    if (filter.status) runs = runs.filter((r) => r.status === filter.status);
    return runs.slice(0, filter.limit && filter.limit > 0 ? filter.limit : 50);
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
    const { plan, problems, secretParams = {} } = compile({ source, params: req.params, fleet, devices: this.store.listDevices(), secrets: this.secrets?.names() ?? [] });
    if (!plan) throw new InvalidWorkflowError(filename || 'workflow', problems);
    return { plan, placement: place(plan.steps, fleet, this.deviceAffinity()), version, problems, secretParams };
  }

  /** Device -> agents running unfinished ssh steps to it: new steps to a device join the agent that holds its sessions. */
  private deviceAffinity(): Map<string, Set<string>> {
    const out = new Map<string, Set<string>>();
    for (const run of this.active.values()) {
      for (const s of run.plan.steps) {
        const rec = run.steps[s.id];
        if (s.kind !== 'ssh' || !s.ssh || !rec?.agent || isTerminal(rec)) continue;
        const key = deviceKey(s.ssh);
        out.set(key, (out.get(key) ?? new Set()).add(rec.agent));
      }
    }
    return out;
  }

  async submit(req: SubmitRequest): Promise<RunRecord> {
    const { plan, placement, version, secretParams } = this.compile(req);
    if (req.expectPlanHash && req.expectPlanHash !== plan.hash) {
      throw new ApiError(
        'PLAN_CHANGED',
        `the plan changed since it was previewed (expected hash ${req.expectPlanHash.slice(0, 12)}, now ${plan.hash.slice(0, 12)})`,
        'preview it again with `drover plan` and run with the new hash',
      );
    }
    const unplaced = [
      ...placement.problems,
      ...plan.groups
        .filter((g) => g.over === 'agents' && g.instances.length === 0)
        .map((g) => ({ path: `step "${g.id}".target`, line: 0, column: 0, severity: 'error' as const, message: 'the fan-out matches no agent that is not draining' })),
    ];
    if (unplaced.length) {
      throw new ApiError(
        'NO_MATCHING_AGENT',
        unplaced.map((p) => `${p.path}: ${p.message}`).join('; '),
        "start an agent with matching --label flags, or change the step's target; nothing was started",
        unplaced,
      );
    }
    const active = [...this.active.values(), ...this.submitting.values()].find((r) => r.workflow === plan.workflow);
    if (active && plan.concurrency === 'skip') {
      throw new ApiError(
        'RUN_SKIPPED',
        `run ${active.id} of ${plan.workflow} is still ${active.status} and the workflow has concurrency: skip; no new run was started`,
        `wait for it (drover status ${active.id}) or cancel it (drover cancel ${active.id})`,
      );
    }
    const queued = !!active && plan.concurrency === 'queue';
    const run = this.newRun(plan, placement, version, queued);
    if (Object.keys(secretParams).length) {
      if (!this.secrets) throw new ApiError('INVALID_PARAMS', 'this control plane has no secret key, so it cannot take secret params');
      run.sealedParams = this.secrets.sealParams(run.id, secretParams);
    }
    requireWritable(this.store, 'no run was started');
    // Active (seen by agent events, reconnects and sweeps, so dispatched) only once it is durable.
    this.submitting.set(run.id, run);
    this.store.putRun(run);
    try {
      await flushOrUndo(this.store, 'no run was started', () => this.store.discardRun(run.id));
    } catch (err) {
      this.log.warn({ run: run.id, workflow: run.workflow, err: (err as Error).message }, 'run not started: its record could not be written');
      throw err;
    } finally {
      this.submitting.delete(run.id);
    }
    this.active.set(run.id, run);
    this.log.info({ run: run.id, workflow: run.workflow, steps: plan.steps.length, queued }, 'run submitted');
    // A run queued behind one that ended (or was never written) while this one was being written starts now.
    if (queued) this.startQueued(run.workflow);
    else this.start(run);
    return run;
  }

  private newRun(plan: RunPlan, placement: Placement, version: number, queued: boolean): RunRecord {
    const now = this.now();
    const step = (id: string, agent: string, parent: string, kind: string): StepRecord => ({
      id,
      parent,
      kind,
      held: false,
      agent,
      previousAgents: [],
      status: 'pending',
      attempt: 0,
      exitCode: 0,
      startedMs: 0,
      endedMs: 0,
      cpuSeconds: 0,
      peakRssBytes: 0,
      outputs: {},
      message: '',
    });
    const steps: Record<string, StepRecord> = {};
    for (const s of plan.steps) steps[s.id] = step(s.id, placement.agents[s.id], s.parent, s.kind);
    for (const g of plan.groups) {
      steps[g.id] = step(g.id, '', '', 'group');
      // Instances past maxParallel wait for a slot, in declaration order.
      if (g.maxParallel > 0) g.instances.slice(g.maxParallel).forEach((id) => (steps[id].held = true));
      if (g.instances.length === 0) Object.assign(steps[g.id], { status: 'succeeded', message: 'no items' });
    }
    return {
      id: this.uniqueRunId(now),
      workflow: plan.workflow,
      status: queued ? 'pending' : 'running',
      createdMs: now,
      startedMs: queued ? 0 : now,
      endedMs: 0,
      params: plan.params,
      message: queued ? 'queued behind an active run (concurrency: queue)' : '',
      cancelRequested: false,
      deadlineExceeded: false,
      workflowVersion: version,
      plan,
      steps,
    };
  }

  private start(run: RunRecord) {
    if (run.status === 'pending') {
      run.status = 'running';
      run.startedMs = this.now();
      run.message = '';
      this.store.putRun(run);
      this.topics.publish({ type: 'run', run });
    }
    this.armDeadline(run);
    for (const agent of this.progressOf(run).agents()) this.dispatch(run, agent);
    this.checkFinished(run);
  }

  /** Starts the oldest queued run of a workflow when none of it is running. */
  private startQueued(workflow: string) {
    const runs = [...this.active.values()].filter((r) => r.workflow === workflow);
    if (runs.some((r) => r.status === 'running')) return;
    const next = runs.sort((a, b) => a.createdMs - b.createdMs || (a.id < b.id ? -1 : 1))[0];
    if (next) this.start(next);
  }

  /** A run id no kept run has (a repeated id would overwrite that run, and agents would take it for the old one). */
  private uniqueRunId(now: number): string {
    let id = newRunId(now);
    while (this.store.getRun(id)) id = newRunId(now);
    return id;
  }

  private progressOf(run: RunRecord): RunProgress {
    let p = this.progress.get(run.id);
    if (!p) this.progress.set(run.id, (p = new RunProgress(run)));
    return p;
  }

  /** Changes a step record: the run's counts follow, and the store writes just that step. */
  private change(run: RunRecord, step: StepRecord, mutate: () => void) {
    this.progressOf(run).change(step, mutate);
    this.store.putRun(run, [step]);
  }

  private armDeadline(run: RunRecord) {
    if (!run.plan.deadlineMs || this.deadlines.has(run.id)) return;
    const left = run.startedMs + run.plan.deadlineMs - this.now();
    const timer = setTimeout(() => {
      this.deadlines.delete(run.id);
      if (TERMINAL_RUN.has(run.status)) return;
      run.deadlineExceeded = true;
      this.log.warn({ run: run.id, deadlineMs: run.plan.deadlineMs }, 'run deadline exceeded; cancelling its steps');
      void this.cancel(run.id, `deadline of ${formatMs(run.plan.deadlineMs)} exceeded`).catch(() => undefined);
    }, Math.max(0, left));
    timer.unref();
    this.deadlines.set(run.id, timer);
  }

  /** Sends an agent its slice of a run (again after a reconnect: agents ignore what they already have). */
  private dispatch(run: RunRecord, agent: string) {
    const secrets = this.secrets;
    const assign = toAssign(run, agent, this.progressOf(run).stepsOf(agent), isTerminal, secrets && ((s) => secrets.forStep(run, s, agent)));
    if (assign) this.fleet.send(agent, { assign });
  }

  /**
   * An agent (re)connected: give it every unfinished slice, repeat pending
   * cancels, and stop what it runs that is no longer its to run (steps moved
   * away while it was lost, steps of runs that ended).
   */
  agentConnected(agent: string, runningAttempts: string[] = []) {
    for (const run of this.active.values()) {
      if (run.status !== 'running') continue;
      const progress = this.progressOf(run);
      for (const s of progress.moved) {
        if (s.agent !== agent && s.previousAgents.includes(agent)) {
          this.fleet.send(agent, { cancel: { runId: run.id, stepId: s.id, reason: `moved to ${s.agent || 'nowhere'} while ${agent} was lost` } });
        }
      }
      if (!progress.hasAgent(agent)) continue;
      if (run.cancelRequested) this.fleet.send(agent, { cancel: { runId: run.id, reason: run.message } });
      else this.dispatch(run, agent);
    }
    for (const attemptId of runningAttempts) {
      const [runId, stepId] = attemptId.split('/');
      const run = this.store.getRun(runId);
      const step = run?.steps[stepId];
      if (!run || !step || step.agent !== agent || isTerminal(step)) {
        const why = !run ? 'the run is unknown' : !step ? 'the step is unknown' : step.agent !== agent ? `it now runs on ${step.agent}` : `the step already ${step.status}`;
        this.peerLog.warn(agent, { agent, attemptId, why }, 'agent runs an attempt it should not; cancelling it');
        this.fleet.send(agent, { cancel: { runId, stepId, reason: `stopped by the control plane: ${why}` } });
      }
    }
  }

  /**
   * An agent was silent past lostAfter: its unfinished steps follow their
   * workflow's onAgentLost policy (wait, retry elsewhere, or fail).
   */
  agentLost(agent: string, cause = `no contact for ${formatMs(this.lostAfterMs)}`) {
    for (const run of [...this.active.values()]) {
      if (run.status !== 'running') continue;
      const stranded = [...this.progressOf(run).stepsOf(agent)].filter((s) => !isTerminal(s));
      if (stranded.length === 0) continue;
      const policy = run.plan.onAgentLost;
      this.log.warn({ agent, run: run.id, steps: stranded.length, policy }, 'agent lost with unfinished steps');
      if (policy === 'wait') continue;
      const fleet = this.fleet.snapshot().filter((a) => a.name !== agent);
      for (const s of stranded) {
        this.change(run, s, () => (s.previousAgents = [...s.previousAgents, agent]));
        const plan = planIndex(run.plan).step(s.id)!;
        // Instances of a fan-out over agents belong to their agent; ssh steps (devices) can move to another proxy.
        const bound = plan.parent && plan.target.strategy === 'all' && plan.kind !== 'ssh';
        const target = policy === 'retry' && !bound ? place([{ ...plan, agent: '' }], fleet).agents[s.id] : undefined;
        if (!target) {
          const why = policy === 'retry' ? '; no other agent matches its target' : '';
          supersede(s, agent, AGENT_LOST, 'the step failed');
          this.finishStep(run, s, 'failed', `agent ${agent} was lost (${cause})${why}`);
          continue;
        }
        this.change(run, s, () => {
          supersede(s, agent, AGENT_LOST, `the step moved to ${target}`);
          s.agent = target;
          s.status = 'pending';
          s.message = `moved from ${agent} (lost) to ${target}`;
        });
        this.topics.publish({ type: 'step', run, step: s });
        this.dispatch(run, target);
      }
      this.store.putRun(run);
      this.checkFinished(run);
    }
  }

  /**
   * The control plane's backstop for step timeouts: a step still running
   * stepDeadlineSlackMs past its timeout has an agent that stopped
   * reporting; it fails here (and is cancelled on the agent if reachable).
   */
  sweepDeadlines() {
    const now = this.now();
    for (const run of [...this.active.values()]) {
      if (run.status !== 'running') continue;
      for (const plan of run.plan.steps) {
        const s = run.steps[plan.id];
        if (s.status !== 'running' || !plan.timeoutMs || !s.startedMs) continue;
        if (now < s.startedMs + plan.timeoutMs + this.stepDeadlineSlackMs) continue;
        this.fleet.send(s.agent, { cancel: { runId: run.id, stepId: s.id, reason: 'past its timeout' } });
        this.change(run, s, () => {
          s.previousAgents = [...s.previousAgents, s.agent];
          supersede(s, s.agent, NO_RESULT, 'the step failed');
        });
        this.finishStep(run, s, 'failed', `no result from agent ${s.agent} within the step's timeout (${formatMs(plan.timeoutMs)}) plus ${formatMs(this.stepDeadlineSlackMs)}; the agent stopped reporting`);
        this.store.putRun(run);
        this.checkFinished(run);
      }
    }
  }

  applyStepEvent(agent: string, ev: StepEventOut) {
    const run = this.store.getRun(ev.runId);
    const step = run?.steps[ev.stepId];
    if (!run || !step) {
      this.peerLog.warn(agent, { agent, run: ev.runId, step: ev.stepId }, 'event for an unknown run or step ignored');
      return;
    }
    if (step.agent !== agent && !step.previousAgents.includes(agent)) {
      this.peerLog.warn(agent, { agent, owner: step.agent, run: run.id, step: step.id }, "agent reported another agent's step; ignored");
      return;
    }
    const status = statusForPhase(ev.phase);
    if (!status) return;
    if (step.agent !== agent || isTerminal(step)) {
      // Superseded (the step moved on or failed without this agent), or the
      // step had ended: kept in the history, the step's outcome stays.
      if (!recordLate(run.id, step, agent, ev, this.now())) return;
      this.store.putRun(run, [step]);
      this.topics.publish({ type: 'step', run, step });
      return;
    }
    this.change(run, step, () => {
      const attempt = recordEvent(run.id, step, agent, ev, this.now());
      // An attempt superseded earlier whose agent has the step again (it came back and the step moved back to it) decides it now.
      if (attempt?.superseded) attempt.superseded = attempt.note = '';
      step.status = status;
      step.attempt = ev.attempt || step.attempt;
      if (ev.startedAtMs) step.startedMs = ev.startedAtMs;
      if (ev.phase === 'STEP_PHASE_RETRYING' || ev.phase === 'STEP_PHASE_LOST') step.message = ev.message;
      if (TERMINAL_STEP.has(status)) {
        step.exitCode = ev.exitCode;
        step.endedMs = ev.endedAtMs || this.now();
        step.cpuSeconds = ev.cpuSeconds;
        step.peakRssBytes = ev.peakRssBytes;
        step.outputs = { ...ev.outputs };
        step.message = ev.message;
      }
    });
    this.topics.publish({ type: 'step', run, step });
    if (step.parent) this.updateGroup(run, step.parent);
    if (TERMINAL_STEP.has(status)) {
      this.releaseDependents(run, step);
      this.checkFinished(run);
    }
  }

  /**
   * Stores a chunk's lines under its attempt, also when that attempt was
   * superseded (its agent is in previousAgents) and its run has ended. `seq`
   * is the agent message's sequence number: a chunk at or below what the
   * run's log already holds from that agent was stored before a crash that
   * lost the agent's applied seq, and is skipped.
   */
  applyLog(agent: string, chunk: LogChunkOut, seq = 0) {
    const run = this.store.getRun(chunk.runId);
    const step = run?.steps[chunk.stepId];
    if (!run || !step || (step.agent !== agent && !step.previousAgents.includes(agent)) || !isOwnAttempt(run.id, step.id, agent, chunk.attemptId)) {
      this.peerLog.warn(agent, { agent, run: chunk.runId, step: chunk.stepId, attemptId: chunk.attemptId }, 'log for an unknown or foreign step or attempt ignored');
      return;
    }
    let stored = this.logSeqs.get(run.id);
    if (!stored) {
      this.logSeqs.set(run.id, (stored = this.store.storedLogSeqs(run.id)));
      if (!this.active.has(run.id)) this.rememberLateLogs(run.id);
    }
    if (seq && seq <= (stored.get(agent) ?? 0)) {
      this.peerLog.info(agent, { agent, run: run.id, seq }, 'log chunk already stored before a restart; skipped');
      return;
    }
    if (seq) stored.set(agent, seq);
    const stream = chunk.stream === 'LOG_STREAM_STDERR' ? 'stderr' : 'stdout';
    const key = `${chunk.attemptId}:${stream}`;
    let dec = this.decoders.get(key);
    if (!dec) this.decoders.set(key, (dec = new TextDecoder()));
    const text = dec.decode(chunk.data, { stream: true });
    // Agents cut chunks at line ends, so each line becomes one record; a chunk's records are stored in one write.
    const t = chunk.atMs || this.now();
    const logs = (text.match(/[^\n]*\n|[^\n]+$/g) ?? []).map((line) => ({ t, step: step.id, attempt: chunk.attemptId, agent, stream, text: line, seq }) as const);
    this.store.appendLog(run.id, ...logs);
    for (const log of logs) this.topics.publish({ type: 'log', run, log });
  }

  /**
   * Late lines of a superseded attempt may reach a run that has ended: its
   * seqs and decoders stay cached for the next chunks (reading them back
   * from the log file per chunk would cost a whole file read each), for the
   * last LATE_LOG_RUNS such runs only.
   */
  private rememberLateLogs(runId: string) {
    this.lateLogRuns.push(runId);
    while (this.lateLogRuns.length > LATE_LOG_RUNS) this.forgetLogs(this.lateLogRuns.shift()!);
  }

  private forgetLogs(runId: string) {
    for (const key of this.decoders.keys()) if (key.startsWith(`${runId}/`)) this.decoders.delete(key);
    this.logSeqs.delete(runId);
  }

  async cancel(id: string, reason: string): Promise<RunRecord> {
    const run = this.get(id);
    if (TERMINAL_RUN.has(run.status)) {
      throw new ApiError('RUN_FINISHED', `run ${id} already ${run.status}; there is nothing to cancel`);
    }
    run.cancelRequested = true;
    run.message = reason || 'cancelled by request';
    const units = Object.values(run.steps).filter((s) => s.kind !== 'group');
    // Held instances and queued runs never reached an agent: they end here.
    for (const s of units) if (!isTerminal(s) && (s.held || run.status === 'pending')) this.finishStep(run, s, 'cancelled', run.message);
    for (const agent of agentsOf(run)) {
      if (units.every((s) => s.agent !== agent || isTerminal(s))) continue;
      const sent = this.fleet.send(agent, { cancel: { runId: run.id, reason: run.message } });
      // An unreachable agent's steps end now; it gets the cancel again when it returns.
      if (!sent) for (const s of units) if (s.agent === agent && !isTerminal(s)) this.finishStep(run, s, 'cancelled', `cancelled while agent ${agent} was unreachable`);
    }
    this.store.putRun(run);
    this.checkFinished(run);
    // Not refused on a failing disk (cancelling a step that fills it is how one gets out): the agents have the
    // cancel and report their steps cancelled, unacknowledged until the store writes again; so does the record.
    await this.store.flush().catch((err: unknown) => {
      this.log.warn({ run: id, err: (err as Error).message }, 'run cancelled, but not on disk yet: the store writes it once the data dir can be written');
    });
    return run;
  }

  private finishStep(run: RunRecord, step: StepRecord, status: StepStatus, message: string) {
    this.change(run, step, () => {
      step.status = status;
      step.held = false;
      step.endedMs = this.now();
      step.message = message;
    });
    this.topics.publish({ type: 'step', run, step });
    if (step.parent) this.updateGroup(run, step.parent);
    this.releaseDependents(run, step);
  }

  /**
   * After an instance changed: mark the group running, hand out freed
   * maxParallel slots (or stop the rollout past maxFailures), and settle the
   * group once every instance has finished.
   */
  private updateGroup(run: RunRecord, groupId: string) {
    const group = planIndex(run.plan).group(groupId)!;
    const rec = run.steps[groupId];
    if (isTerminal(rec)) return;
    const progress = this.progressOf(run);
    const counts = progress.group(groupId);
    if (rec.status === 'pending' && counts.started > 0) {
      let startedMs = this.now();
      for (const id of group.instances) if (run.steps[id].startedMs) startedMs = Math.min(startedMs, run.steps[id].startedMs);
      this.change(run, rec, () => {
        rec.status = 'running';
        rec.startedMs = startedMs;
      });
      this.topics.publish({ type: 'step', run, step: rec });
    }
    const failed = counts.failed;
    if (failed > group.maxFailures) {
      for (const s of progress.takeHeld(groupId, Infinity)) {
        this.finishStep(run, s, 'skipped', `skipped: ${groupId} stopped after ${failed} failed instance${failed === 1 ? '' : 's'} (maxFailures ${group.maxFailures})`);
      }
    } else if (!run.cancelRequested) {
      const free = group.maxParallel ? group.maxParallel - counts.active : Infinity;
      const agents = new Set<string>();
      for (const s of free > 0 ? progress.takeHeld(groupId, free) : []) {
        this.change(run, s, () => (s.held = false));
        agents.add(s.agent);
      }
      for (const agent of agents) this.dispatch(run, agent);
    }
    // Settled already by a nested call (skipping the last held instance ends the group).
    if (isTerminal(rec) || counts.terminal < group.instances.length) return;
    const instances = group.instances.map((id) => run.steps[id]);
    const counted = Object.entries(countBy(instances.map((s) => s.status)));
    this.change(run, rec, () => {
      rec.status = groupStatus(run, group, instances);
      rec.endedMs = this.now();
      rec.message = counted.map(([st, n]) => `${n} ${st}`).join(', ');
      if (rec.status === 'failed') rec.message += ` (maxFailures ${group.maxFailures})`;
    });
    this.topics.publish({ type: 'step', run, step: rec });
    this.releaseDependents(run, rec);
  }

  /** Tells agents whose steps need `step` (and run elsewhere) that it finished. */
  private releaseDependents(run: RunRecord, step: StepRecord) {
    const targets = new Set<string>();
    for (const s of planIndex(run.plan).dependents(step.id)) {
      const rec = run.steps[s.id];
      if (rec.agent !== step.agent && !isTerminal(rec) && !rec.held) targets.add(rec.agent);
    }
    for (const agent of targets) this.fleet.send(agent, { release: toRelease(run, step) });
  }

  private checkFinished(run: RunRecord) {
    if (run.status !== 'running' || this.progressOf(run).open > 0) return;
    const steps = Object.values(run.steps);
    if (!steps.every(isTerminal)) {
      this.log.error({ run: run.id }, 'run progress counts disagree with its steps; recounting');
      this.progress.delete(run.id);
      return;
    }
    const failed = steps.find((s) => !s.parent && s.status === 'failed' && !tolerated(run, s));
    if (run.deadlineExceeded) run.status = 'failed';
    else run.status = run.cancelRequested ? 'cancelled' : failed ? 'failed' : 'succeeded';
    if (failed && !run.cancelRequested) run.message = `step ${failed.id} failed${failed.message ? `: ${failed.message}` : ''}`;
    run.endedMs = this.now();
    // Its secret params are needed no more ('' rather than delete: a change-log replay overwrites fields, never removes them).
    if (run.sealedParams) run.sealedParams = '';
    clearTimeout(this.deadlines.get(run.id));
    this.deadlines.delete(run.id);
    this.forgetLogs(run.id);
    this.active.delete(run.id);
    this.progress.delete(run.id);
    this.store.putRun(run, []);
    this.log.info({ run: run.id, status: run.status, ms: run.endedMs - run.startedMs }, 'run finished');
    this.topics.publish({ type: 'run', run });
    this.startQueued(run.workflow);
  }
}

function groupStatus(run: RunRecord, group: GroupPlan, instances: StepRecord[]): StepStatus {
  const failed = instances.filter((s) => s.status === 'failed').length;
  if (run.cancelRequested && instances.some((s) => s.status === 'cancelled')) return 'cancelled';
  if (failed > group.maxFailures) return 'failed';
  if (instances.length > 0 && instances.every((s) => s.status === 'skipped')) return 'skipped';
  return 'succeeded';
}

function countBy(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

function agentsOf(run: RunRecord): string[] {
  return [...new Set(Object.values(run.steps).filter((s) => s.agent).map((s) => s.agent))].sort();
}

function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${ms / 1000}s`;
}

/**
 * Sortable, readable run ids: r-YYMMDD-HHMMSS-xxxxxxxx (UTC). Four random
 * bytes: with two, runs started in the same second collided often enough to
 * matter at tens of runs a second (the benchmark's throughput figure found it).
 */
export function newRunId(now: number): string {
  const d = new Date(now).toISOString();
  return `r-${d.slice(2, 4)}${d.slice(5, 7)}${d.slice(8, 10)}-${d.slice(11, 13)}${d.slice(14, 16)}${d.slice(17, 19)}-${randomBytes(4).toString('hex')}`;
}
