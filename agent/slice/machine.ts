/**
 * The agent's slice machine: what to do next for this agent's slices of
 * plans, decided from what happened, with no I/O. agent/runtime.ts performs
 * the effects it returns and turns what executors report back into events.
 *
 *   sliceStep(state, event, inputs) -> { state, effects }
 *
 * The state is updated in place and returned (a copy per event would cost
 * O(steps)); effects are data, to be performed in order. Everything the
 * machine reads besides the state and the event comes in `inputs`: the
 * clock, the random source of the retry jitter, and a read-only view of the
 * attempt ledger. `when` conditions and templates are evaluated here: CEL is
 * pure.
 *
 * It decides:
 * - which waiting steps may start: needs on this agent are met locally (no
 *   round trip), needs on other agents by a Release from the control plane;
 * - the skip of a step whose need failed (unless tolerated: continueOnError),
 *   was skipped or cancelled, or whose `when` is false; in a cancelled run,
 *   the cancel of every step not started yet except finally steps;
 * - what an attempt's end means: success, another attempt after the backoff
 *   (retry.ts), failure, or a postpone when the disk refused its start;
 * - after a restart, from the ledger, whether a step's last attempt ended
 *   (its result is reported again), still runs (re-attached) or is lost
 *   (the retry policy applies): an attempt id is never started twice, and
 *   its STARTED is said again first;
 * - when this agent's part of a run is done.
 */
import { evaluateCondition, renderTemplate, type ExprContext } from '../template.js';
import { backoffDelay, retryable, type Failure } from './retry.js';
import type { AssignedStep, AttemptReport, Assignment, Cancel, DoneStatus, EndStatus, EventFields, Phase, Release, StepSpec } from './types.js';

/** A disk error refused what an attempt's start needs: it is tried again, as the same attempt, after this. */
export const POSTPONE_MS = 1000;
/** Finished slices remembered (so a late duplicate Assign is ignored). */
export const MAX_FINISHED_SLICES = 1000;
export const LOST_MESSAGE = 'lost: the agent stopped while this attempt ran';

export interface AgentInfo {
  name: string;
  labels: Record<string, string>;
  /** Host facts, visible to expressions as agent.facts. */
  facts: Record<string, unknown>;
}

interface Dep {
  status: DoneStatus;
  outputs: Record<string, string>;
  /** Failed, but with continueOnError: dependents proceed. */
  tolerated: boolean;
}

export interface StepState extends AssignedStep {
  state: 'waiting' | 'running' | 'done';
  /** The attempt last recorded (0: none yet). */
  attempt: number;
  /** An attempt executes (the driver holds it); false while a retry or postpone timer waits. */
  live: boolean;
  result?: Dep;
  /** Set when this one step was cancelled (a whole-run cancel uses the slice's reason). */
  cancelReason?: string;
}

export interface SliceState {
  runId: string;
  workflow: string;
  params: Record<string, unknown>;
  startedMs: number;
  steps: Map<string, StepState>;
  /** Steps by each need they have: who may go on when that need is resolved. */
  dependents: Map<string, StepState[]>;
  /** Steps not done. */
  left: number;
  remote: Map<string, Dep>;
  cancelled: boolean;
  cancelReason: string;
  /** Counted among the finished slices. */
  completed: boolean;
}

export interface SlicesState {
  agent: AgentInfo;
  slices: Map<string, SliceState>;
  /** Run ids of completed slices, oldest first; past MAX_FINISHED_SLICES the oldest is forgotten. */
  finished: string[];
  /** Steps running (an attempt executes or waits for its retry). */
  running: number;
}

/** What the ledger knows of an attempt. */
export interface PriorAttempt {
  ended?: EndStatus;
  outputs?: Record<string, string>;
}

export interface SliceInputs {
  now: number;
  /** In [0, 1): the retry jitter. */
  random: () => number;
  /** The attempt ledger, read-only: undefined for an attempt never started. */
  ledger(attemptId: string): PriorAttempt | undefined;
  /** An attempt an earlier agent process started is still there to re-attach to (running, or ended unseen). */
  detached(attemptId: string): boolean;
}

/** How an attempt ended, as the driver saw it. */
export type Outcome =
  | { kind: 'succeeded' }
  /** A non-zero exit (report.exitCode, report.signal). */
  | { kind: 'exited' }
  | { kind: 'timeout' }
  /** The executor failed it (an http status, a process that could not start, a bad output file). */
  | { kind: 'error'; message: string }
  /** Preparing or launching it failed: the step fails, without a retry. */
  | { kind: 'unstartable'; message: string }
  | { kind: 'lost' }
  | { kind: 'cancelled' }
  /** A full or failing disk refused its start: postponed. */
  | { kind: 'diskError'; why: string };

export type SliceEvent =
  | { type: 'assigned'; assignment: Assignment }
  | { type: 'released'; release: Release }
  /** The attempt is in the ledger and its executor starts now. */
  | { type: 'started'; runId: string; stepId: string; attempt: number; startedAtMs: number }
  | { type: 'ended'; runId: string; stepId: string; attempt: number; outcome: Outcome; report: AttemptReport }
  /** A retry or postpone timer fired. */
  | { type: 'timer'; runId: string; stepId: string; attempt: number }
  | { type: 'cancel'; cancel: Cancel }
  /** The control plane says the run ended (RunFinished): nothing of it will come again. */
  | { type: 'runFinished'; runId: string };

export type Effect =
  /** Prepare, record in the ledger and launch this attempt; `env` holds the step's own variables, rendered. */
  | { type: 'start'; runId: string; stepId: string; attempt: number; attemptId: string; spec: StepSpec; env: Record<string, string>; context: () => ExprContext }
  /** Continue the attempt an earlier agent process started. */
  | { type: 'reattach'; runId: string; stepId: string; attempt: number; attemptId: string; spec: StepSpec }
  /** Stop the executing attempt (SIGTERM, then SIGKILL after the grace); its end comes as an event. */
  | { type: 'stop'; attemptId: string }
  | { type: 'setTimer'; runId: string; stepId: string; attempt: number; atMs: number }
  | { type: 'clearTimer'; runId: string; stepId: string }
  /** Write the attempt's end to the ledger. */
  | { type: 'record'; attemptId: string; status: EndStatus; outputs: Record<string, string> }
  /** Remove the attempt's files. */
  | { type: 'removeAttempt'; runId: string; stepId: string; attempt: number }
  | { type: 'event'; runId: string; stepId: string; attemptId: string; attempt: number; phase: Phase; fields: EventFields }
  | { type: 'log'; level: 'debug' | 'info' | 'warn'; fields: Record<string, unknown>; msg: string }
  /** This agent's part of the run is done. */
  | { type: 'sliceDone'; runId: string };

export function newSlicesState(agent: AgentInfo): SlicesState {
  return { agent, slices: new Map(), finished: [], running: 0 };
}

export function attemptIdOf(runId: string, stepId: string, attempt: number, agent: string): string {
  return `${runId}/${stepId}/${attempt}/${agent}`;
}

/** Attempt ids of the steps running now (an attempt waiting for its retry counts as its last one). */
export function runningAttempts(state: SlicesState): string[] {
  const out: string[] = [];
  for (const s of state.slices.values()) {
    for (const st of s.steps.values()) if (st.state === 'running') out.push(attemptIdOf(s.runId, st.spec.id, st.attempt, state.agent.name));
  }
  return out;
}

/** The expression context of a step: params, its secrets, what its slice knows of every step, the run, this agent. */
export function exprContext(agent: AgentInfo, slice: SliceState, step: StepState): ExprContext {
  const steps: ExprContext['steps'] = {};
  for (const [id, d] of slice.remote) steps[id] = { status: d.status, outputs: d.outputs };
  for (const [id, s] of slice.steps) if (s.result) steps[id] = { status: s.result.status, outputs: s.result.outputs };
  return {
    params: Object.keys(step.secretParams).length ? { ...slice.params, ...step.secretParams } : slice.params,
    secrets: step.secrets,
    steps,
    run: { id: slice.runId, workflow: slice.workflow, started: new Date(slice.startedMs).toISOString() },
    agent: { name: agent.name, labels: agent.labels, facts: agent.facts },
    ...(step.spec.item !== undefined ? { item: step.spec.item } : {}),
  };
}

/** Applies one event; see the file header. */
export function sliceStep(state: SlicesState, event: SliceEvent, inputs: SliceInputs): { state: SlicesState; effects: Effect[] } {
  const m = new Transition(state, inputs);
  m.apply(event);
  return { state, effects: m.out };
}

/** One event's handling: the effects it decides, in order. */
class Transition {
  readonly out: Effect[] = [];
  /** Waiting steps to look at: one of their needs was resolved (or they are new). */
  private readonly candidates: StepState[] = [];

  constructor(
    private readonly state: SlicesState,
    private readonly inputs: SliceInputs,
  ) {}

  apply(ev: SliceEvent) {
    if (ev.type === 'assigned') return this.assigned(ev.assignment);
    if (ev.type === 'runFinished') return this.forget(ev.runId);
    const runId = ev.type === 'released' ? ev.release.runId : ev.type === 'cancel' ? ev.cancel.runId : ev.runId;
    const slice = this.state.slices.get(runId);
    if (!slice) {
      if (ev.type === 'released') this.log('debug', { run: runId, step: ev.release.stepId }, 'release for an unknown run ignored');
      return;
    }
    switch (ev.type) {
      case 'released':
        this.release(slice, ev.release);
        break;
      case 'cancel':
        this.cancel(slice, ev.cancel);
        break;
      default: {
        const step = slice.steps.get(ev.stepId);
        if (!step || step.state !== 'running') return;
        if (ev.type === 'started') this.started(slice, step, ev.attempt, ev.startedAtMs);
        else if (ev.type === 'ended') this.ended(slice, step, ev.attempt, ev.outcome, ev.report);
        else if (!step.live) this.startAttempt(slice, step, ev.attempt);
      }
    }
    this.pump(slice);
  }

  private assigned(a: Assignment) {
    let slice = this.state.slices.get(a.runId);
    if (!slice) {
      slice = {
        runId: a.runId,
        workflow: a.workflow,
        params: a.params,
        startedMs: a.startedMs,
        steps: new Map(),
        dependents: new Map(),
        left: 0,
        remote: new Map(),
        cancelled: false,
        cancelReason: '',
        completed: false,
      };
      this.state.slices.set(a.runId, slice);
    }
    for (const s of a.steps) {
      // Sent again (a replayed Assign): the first one stands.
      if (slice.steps.has(s.spec.id)) continue;
      const step: StepState = { ...s, state: 'waiting', attempt: 0, live: false };
      slice.steps.set(s.spec.id, step);
      for (const n of s.spec.needs) {
        const list = slice.dependents.get(n);
        if (list) list.push(step);
        else slice.dependents.set(n, [step]);
      }
      this.candidates.push(step);
      slice.left++;
    }
    for (const r of a.released) this.release(slice, r);
    this.pump(slice);
  }

  /** A finished run's completed slice is forgotten; one with a step still running (superseded there) stays until it is done. */
  private forget(runId: string) {
    const slice = this.state.slices.get(runId);
    if (!slice?.completed) return;
    this.state.slices.delete(runId);
    const i = this.state.finished.indexOf(runId);
    if (i >= 0) this.state.finished.splice(i, 1);
  }

  private release(slice: SliceState, r: Release) {
    if (slice.steps.has(r.stepId)) return;
    slice.remote.set(r.stepId, { status: r.status, outputs: r.outputs, tolerated: r.tolerated });
    this.resolved(slice, r.stepId);
  }

  private cancel(slice: SliceState, c: Cancel) {
    if (c.stepId) {
      // One step only: the control plane moved it elsewhere (its agent was lost).
      const step = slice.steps.get(c.stepId);
      if (step && step.state !== 'done') this.stop(slice, step, c.reason);
      return;
    }
    if (slice.cancelled) return;
    slice.cancelled = true;
    slice.cancelReason = c.reason;
    this.log('info', { run: slice.runId, reason: c.reason }, 'cancelling run');
    for (const step of slice.steps.values()) if (step.state === 'running') this.stop(slice, step, c.reason);
  }

  private stop(slice: SliceState, step: StepState, reason: string) {
    step.cancelReason = reason;
    if (step.live) return this.out.push({ type: 'stop', attemptId: this.attemptId(slice, step, step.attempt) });
    if (step.state === 'running') this.out.push({ type: 'clearTimer', runId: slice.runId, stepId: step.spec.id });
    // No attempt runs (it waits for its needs, its retry or a postponed start): the step is cancelled, no attempt is.
    this.finish(slice, step, 'cancelled', { message: reason }, { noAttempt: true });
  }

  /**
   * Starts, skips or cancels each candidate whose needs are all resolved
   * (what that ends queues its own dependents); then sees whether the slice
   * is done. Only candidates are looked at: a step waits because a need is
   * unresolved, so nothing else can have become ready.
   */
  private pump(slice: SliceState) {
    for (let i = 0; i < this.candidates.length; i++) {
      const step = this.candidates[i];
      if (step.state === 'waiting' && step.spec.needs.every((n) => this.dep(slice, n))) this.resolve(slice, step);
    }
    this.candidates.length = 0;
    this.completed(slice);
  }

  /** A need is resolved: its waiting dependents become candidates. */
  private resolved(slice: SliceState, need: string) {
    for (const d of slice.dependents.get(need) ?? []) if (d.state === 'waiting') this.candidates.push(d);
  }

  private dep(slice: SliceState, id: string): Dep | undefined {
    return slice.steps.get(id)?.result ?? slice.remote.get(id);
  }

  /** A waiting step whose needs are all resolved: cancelled, skipped, failed (a `when` that cannot be evaluated) or running. */
  private resolve(slice: SliceState, step: StepState) {
    const { spec } = step;
    if (slice.cancelled && !spec.isFinally) return this.finish(slice, step, 'cancelled', { message: slice.cancelReason });
    if (!spec.isFinally) {
      for (const n of spec.needs) {
        const d = this.dep(slice, n)!;
        if (d.status === 'succeeded' || d.tolerated) continue;
        return this.finish(slice, step, 'skipped', { message: `skipped: needs ${n}, which ${d.status === 'failed' ? 'failed' : `was ${d.status}`}` });
      }
    }
    if (spec.when) {
      let go: boolean;
      try {
        go = evaluateCondition(spec.when, exprContext(this.state.agent, slice, step));
      } catch (err) {
        return this.finish(slice, step, 'failed', { message: `cannot evaluate when: ${(err as Error).message}` });
      }
      if (!go) return this.finish(slice, step, 'skipped', { message: `skipped: condition "${spec.when}" is false` });
    }
    step.state = 'running';
    this.state.running++;
    this.resumeOrStart(slice, step);
  }

  /**
   * Starts attempt 1, unless the ledger shows this step ran before a restart:
   * an ended attempt's result is reported again (the control plane ignores a
   * repeat), a detached one is re-attached to, a lost one goes through the
   * retry policy.
   */
  private resumeOrStart(slice: SliceState, step: StepState) {
    let last = 0;
    while (this.inputs.ledger(this.attemptId(slice, step, last + 1))) last++;
    if (last === 0) return this.startAttempt(slice, step, 1);
    step.attempt = last;
    const attemptId = this.attemptId(slice, step, last);
    const prior = this.inputs.ledger(attemptId)!;
    if (prior.ended === 'retried') return this.startAttempt(slice, step, last + 1);
    // Its STARTED may have died with the last process (journaled only in memory on a failing disk): said again
    // before its end, which must follow one (docs/protocol.md, rule event-order); a repeat changes nothing.
    this.event(slice, step, 'started', {});
    if (prior.ended && prior.ended !== 'lost') {
      return this.finish(slice, step, prior.ended, { outputs: prior.outputs, message: 'result recovered from the agent ledger after a restart' }, { record: false });
    }
    if (this.inputs.detached(attemptId)) {
      step.live = true;
      return this.out.push({ type: 'reattach', runId: slice.runId, stepId: step.spec.id, attempt: last, attemptId, spec: step.spec });
    }
    this.failed(slice, step, {}, { kind: 'lost' }, LOST_MESSAGE);
  }

  private startAttempt(slice: SliceState, step: StepState, attempt: number) {
    const { spec } = step;
    const attemptId = this.attemptId(slice, step, attempt);
    if (this.inputs.ledger(attemptId)) return this.log('warn', { attemptId }, 'attempt already started once; not starting it again');
    let ctx: ExprContext | undefined;
    const context = () => (ctx ??= exprContext(this.state.agent, slice, step));
    const env: Record<string, string> = {};
    try {
      for (const k in spec.env) env[k] = renderTemplate(spec.env[k], context());
    } catch (err) {
      // Before the attempt starts: the step fails, and no attempt did (docs/protocol.md, rule attempt-zero).
      return this.finish(slice, step, 'failed', { message: `cannot prepare the step: ${(err as Error).message}` }, { noAttempt: true });
    }
    step.live = true;
    this.out.push({ type: 'start', runId: slice.runId, stepId: spec.id, attempt, attemptId, spec, env, context });
  }

  private started(slice: SliceState, step: StepState, attempt: number, startedAtMs: number) {
    step.attempt = attempt;
    this.event(slice, step, 'started', { startedAtMs });
  }

  private ended(slice: SliceState, step: StepState, attempt: number, outcome: Outcome, report: AttemptReport) {
    step.live = false;
    if (outcome.kind === 'diskError') return this.postpone(slice, step, attempt, outcome.why);
    // Preparing it failed before it was started (no STARTED was reported): the step fails with no attempt.
    if (outcome.kind === 'unstartable' && step.attempt !== attempt) return this.finish(slice, step, 'failed', { ...report, message: outcome.message }, { noAttempt: true });
    step.attempt = attempt;
    const exitCode = report.exitCode ?? 0;
    switch (outcome.kind) {
      case 'succeeded':
        return this.finish(slice, step, 'succeeded', report);
      case 'cancelled':
        return this.finish(slice, step, 'cancelled', { ...report, message: step.cancelReason || slice.cancelReason || 'cancelled' });
      case 'unstartable':
        return this.finish(slice, step, 'failed', { ...report, message: outcome.message });
      case 'lost':
        return this.failed(slice, step, report, { kind: 'lost' }, LOST_MESSAGE);
      case 'timeout':
        return this.failed(slice, step, report, { kind: 'timeout', exitCode }, `timed out after ${step.spec.timeoutMs / 1000}s; the step's process group was killed`);
      case 'exited':
        return this.failed(slice, step, report, { kind: 'exited', exitCode }, `exited with code ${exitCode}${report.signal ? ` (${report.signal})` : ''}`);
      case 'error':
        return this.failed(slice, step, report, { kind: 'error', exitCode }, outcome.message);
    }
  }

  /** The state dir's disk refused what starting an attempt needs: the step waits and tries again, as the same attempt. */
  private postpone(slice: SliceState, step: StepState, attempt: number, why: string) {
    this.log('warn', { run: slice.runId, step: step.spec.id, attempt, why }, 'cannot start the step now: the state dir cannot be written; trying again in 1 s');
    this.out.push({ type: 'setTimer', runId: slice.runId, stepId: step.spec.id, attempt, atMs: this.inputs.now + POSTPONE_MS });
  }

  /** After a failed or lost attempt: the next attempt after the backoff, or the step fails. */
  private failed(slice: SliceState, step: StepState, report: AttemptReport, failure: Failure, message: string) {
    const retry = step.spec.retry;
    if (slice.cancelled || !retryable(retry, step.attempt, failure)) return this.finish(slice, step, 'failed', { ...report, message });
    // Not 'failed': an agent restarted before the next attempt starts must start it, not report the step failed.
    this.out.push(
      { type: 'record', attemptId: this.attemptId(slice, step, step.attempt), status: 'retried', outputs: {} },
      { type: 'removeAttempt', runId: slice.runId, stepId: step.spec.id, attempt: step.attempt },
    );
    const delay = backoffDelay(retry, step.attempt, this.inputs.random);
    this.event(slice, step, 'retrying', { ...report, message: `attempt ${step.attempt} of ${retry.attempts} ${message}; retrying in ${(delay / 1000).toFixed(1)}s` });
    this.out.push({ type: 'setTimer', runId: slice.runId, stepId: step.spec.id, attempt: step.attempt + 1, atMs: this.inputs.now + delay });
  }

  /**
   * `record`: false for a result read back from the ledger (it is there
   * already). `noAttempt`: the step ends while no attempt of it runs (none
   * started, or the last one already reported RETRYING): its event names
   * attempt 0, and the ledger keeps what it has of the last attempt.
   */
  private finish(slice: SliceState, step: StepState, status: DoneStatus, fields: EventFields, { record = true, noAttempt = false } = {}) {
    if (step.state === 'running') this.state.running--;
    step.state = 'done';
    step.live = false;
    slice.left--;
    const outputs = { ...fields.outputs };
    step.result = { status, outputs, tolerated: status === 'failed' && step.spec.continueOnError };
    this.resolved(slice, step.spec.id);
    const attempt = noAttempt ? 0 : step.attempt;
    if (attempt) {
      // The ledger first: if the agent dies before the event is journaled, the
      // result is reported again after the restart instead of being re-run.
      if (record) this.out.push({ type: 'record', attemptId: this.attemptId(slice, step, attempt), status, outputs });
      // Only once the end is in the ledger: a restart in between would take the attempt for lost and run it again.
      this.out.push({ type: 'removeAttempt', runId: slice.runId, stepId: step.spec.id, attempt });
    }
    this.event(slice, step, status, { ...fields, outputs }, attempt);
    this.log('info', { run: slice.runId, step: step.spec.id, status, attempt }, 'step finished');
  }

  /** Counts the slice among the finished ones once all its steps are done, and forgets the oldest past the bound. */
  private completed(slice: SliceState) {
    if (slice.left > 0 || slice.completed) return;
    slice.completed = true;
    this.state.finished.push(slice.runId);
    this.out.push({ type: 'sliceDone', runId: slice.runId });
    while (this.state.finished.length > MAX_FINISHED_SLICES) this.state.slices.delete(this.state.finished.shift()!);
  }

  private event(slice: SliceState, step: StepState, phase: Phase, fields: EventFields, attempt = step.attempt) {
    const attemptId = attempt ? this.attemptId(slice, step, attempt) : '';
    this.out.push({ type: 'event', runId: slice.runId, stepId: step.spec.id, attemptId, attempt, phase, fields });
  }

  private log(level: 'debug' | 'info' | 'warn', fields: Record<string, unknown>, msg: string) {
    this.out.push({ type: 'log', level, fields, msg });
  }

  private attemptId(slice: SliceState, step: StepState, attempt: number): string {
    return attemptIdOf(slice.runId, step.spec.id, attempt, this.state.agent.name);
  }
}
