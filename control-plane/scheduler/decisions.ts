/**
 * The run machine's working set for one event: the rules every policy
 * shares (change a step, finish it, settle its group, release what needs
 * it, end the run, start the next queued one) and the effects they add up
 * to. Built per event by `step()` in run-machine.ts; nothing here does I/O.
 */
import type { GroupPlan } from '../../common/workflow/model/plan.js';
import { planIndex } from '../model/plan-index.js';
import { TERMINAL_RUN, TERMINAL_STEP, type RunRecord, type StepRecord, type StepStatus } from '../model/run.js';
import type { Effect, RunsState } from './run-machine.js';
import { RunProgress } from './run-progress.js';
import { armWaits, releaseWaiting } from './capacity.js';
import { closeGates, resolveGates, startGates } from './approvals.js';

export const isTerminal = (s: StepRecord) => TERMINAL_STEP.has(s.status);

export class Decisions {
  readonly effects: Effect[] = [];

  constructor(
    readonly state: RunsState,
    readonly now: number,
  ) {}

  log(level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, msg: string, peer?: string) {
    this.effects.push({ type: 'log', level, fields, msg, peer });
  }

  persist(run: RunRecord, steps?: StepRecord[]) {
    this.effects.push({ type: 'persist', run, steps });
  }

  notifyStep(run: RunRecord, step: StepRecord) {
    this.effects.push({ type: 'notify', change: { type: 'step', run, step } });
  }

  progressOf(run: RunRecord): RunProgress {
    let p = this.state.progress.get(run.id);
    if (!p) this.state.progress.set(run.id, (p = new RunProgress(run)));
    return p;
  }

  /** Changes a step record: the run's counts follow, and the store writes just that step. */
  change(run: RunRecord, step: StepRecord, mutate: () => void) {
    this.progressOf(run).change(step, mutate);
    this.persist(run, [step]);
  }

  start(run: RunRecord) {
    if (run.status === 'pending') {
      run.status = 'running';
      run.startedMs = this.now;
      run.message = '';
      this.persist(run);
      this.effects.push({ type: 'notify', change: { type: 'run', run } });
    }
    this.armDeadline(run);
    for (const agent of this.progressOf(run).agents()) this.dispatch(run, agent);
    armWaits(this, run);
    startGates(this, run);
    this.checkFinished(run);
  }

  /** Starts the oldest queued run of a workflow when none of it is running. */
  startQueued(workflow: string) {
    const runs = [...this.state.active.values()].filter((r) => r.workflow === workflow);
    if (runs.some((r) => r.status === 'running')) return;
    const next = runs.sort((a, b) => a.createdMs - b.createdMs || (a.id < b.id ? -1 : 1))[0];
    if (next) this.start(next);
  }

  armDeadline(run: RunRecord) {
    if (run.plan.deadlineMs) this.effects.push({ type: 'setTimer', runId: run.id, atMs: run.startedMs + run.plan.deadlineMs });
  }

  /** Sends an agent its slice of a run (again after a reconnect: agents ignore what they already have). */
  dispatch(run: RunRecord, agent: string) {
    const index = planIndex(run.plan);
    const steps = [];
    for (const rec of this.progressOf(run).stepsOf(agent)) if (rec.agent === agent && !rec.held && !isTerminal(rec)) steps.push(index.step(rec.id)!);
    if (steps.length === 0) return;
    const inSlice = new Set(steps.map((s) => s.id));
    const released = new Set<string>();
    for (const s of steps) for (const n of s.needs) if (!inSlice.has(n) && isTerminal(run.steps[n])) released.add(n);
    const done = [...released].map((id) => ({ step: run.steps[id], tolerated: tolerated(run, run.steps[id]) }));
    this.effects.push({ type: 'assign', order: { run, agent, steps, released: done } });
  }

  sendCancel(agent: string, runId: string, stepId: string, reason: string, reportUndelivered = false) {
    this.effects.push({ type: 'cancel', agent, runId, stepId, reason, reportUndelivered });
  }

  cancel(runId: string, reason: string) {
    const run = this.state.active.get(runId);
    if (!run || TERMINAL_RUN.has(run.status)) return;
    run.cancelRequested = true;
    run.message = reason || 'cancelled by request';
    const units = Object.values(run.steps).filter((s) => s.kind !== 'group');
    // Held instances, steps waiting for capacity (no agent; gates are closed below) and queued runs never reached an agent: they end here.
    for (const s of units) if (!isTerminal(s) && (s.held || (!s.agent && s.kind !== 'approval') || run.status === 'pending')) this.finishStep(run, s, 'cancelled', run.message);
    closeGates(this, run);
    for (const agent of this.progressOf(run).agents()) {
      if (!this.unfinishedOn(run, agent).length) continue;
      // An unreachable agent's steps end (see undelivered); it gets the cancel again when it returns.
      this.sendCancel(agent, run.id, '', run.message, true);
    }
    this.persist(run);
    this.checkFinished(run);
  }

  /** A run's cancel could not reach `agent`: its steps there end now. */
  undelivered(runId: string, agent: string) {
    const run = this.state.active.get(runId);
    if (!run || run.status !== 'running') return;
    for (const s of this.unfinishedOn(run, agent)) this.finishStep(run, s, 'cancelled', `cancelled while agent ${agent} was unreachable`);
    this.persist(run);
    this.checkFinished(run);
  }

  /** The run's unfinished units placed on `agent` (a copy: finishing them changes the index). */
  unfinishedOn(run: RunRecord, agent: string): StepRecord[] {
    return [...this.progressOf(run).stepsOf(agent)].filter((s) => !isTerminal(s));
  }

  finishStep(run: RunRecord, step: StepRecord, status: StepStatus, message: string) {
    this.change(run, step, () => {
      step.status = status;
      step.held = false;
      step.endedMs = this.now;
      step.message = message;
    });
    this.notifyStep(run, step);
    if (step.parent) this.updateGroup(run, step.parent);
    this.releaseDependents(run, step);
  }

  /**
   * After an instance changed: mark the group running, hand out freed
   * maxParallel slots (or stop the rollout past maxFailures), and settle the
   * group once every instance has finished.
   */
  updateGroup(run: RunRecord, groupId: string) {
    const group = planIndex(run.plan).group(groupId)!;
    const rec = run.steps[groupId];
    if (isTerminal(rec)) return;
    const progress = this.progressOf(run);
    const counts = progress.group(groupId);
    if (rec.status === 'pending' && counts.started > 0) {
      let startedMs = this.now;
      for (const id of group.instances) if (run.steps[id].startedMs) startedMs = Math.min(startedMs, run.steps[id].startedMs);
      this.change(run, rec, () => {
        rec.status = 'running';
        rec.startedMs = startedMs;
      });
      this.notifyStep(run, rec);
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
      rec.endedMs = this.now;
      rec.message = counted.map(([st, n]) => `${n} ${st}`).join(', ');
      if (rec.status === 'failed') rec.message += ` (maxFailures ${group.maxFailures})`;
    });
    this.notifyStep(run, rec);
    this.releaseDependents(run, rec);
  }

  /** Tells agents whose steps need `step` (and run elsewhere) that it finished. */
  releaseDependents(run: RunRecord, step: StepRecord) {
    releaseWaiting(this, run, step);
    const targets = new Set<string>();
    const dependents = planIndex(run.plan).dependents(step.id);
    for (const s of dependents) {
      const rec = run.steps[s.id];
      // Gates and steps waiting for capacity run on no agent: the control plane resolves them itself.
      if (rec.agent && rec.agent !== step.agent && !isTerminal(rec) && !rec.held) targets.add(rec.agent);
    }
    resolveGates(this, run, dependents);
    if (targets.size === 0) return;
    const ok = tolerated(run, step);
    for (const agent of targets) this.effects.push({ type: 'release', run, agent, step, tolerated: ok });
  }

  checkFinished(run: RunRecord) {
    if (run.status !== 'running' || this.progressOf(run).open > 0) return;
    const steps = Object.values(run.steps);
    if (!steps.every(isTerminal)) {
      this.log('error', { run: run.id }, 'run progress counts disagree with its steps; recounting');
      this.state.progress.delete(run.id);
      return;
    }
    const failed = steps.find((s) => !s.parent && s.status === 'failed' && !tolerated(run, s));
    if (run.deadlineExceeded) run.status = 'failed';
    else run.status = run.cancelRequested ? 'cancelled' : failed ? 'failed' : 'succeeded';
    if (failed && !run.cancelRequested) run.message = `step ${failed.id} failed${failed.message ? `: ${failed.message}` : ''}`;
    run.endedMs = this.now;
    // Its secret params are needed no more ('' rather than delete: a change-log replay overwrites fields, never removes them).
    if (run.sealedParams) run.sealedParams = '';
    this.effects.push({ type: 'clearTimer', runId: run.id });
    this.state.active.delete(run.id);
    this.state.progress.delete(run.id);
    this.persist(run, []);
    this.effects.push({ type: 'ended', run });
    this.log('info', { run: run.id, status: run.status, ms: run.endedMs - run.startedMs }, 'run finished');
    this.effects.push({ type: 'notify', change: { type: 'run', run } });
    this.startQueued(run.workflow);
  }
}

/** Whether dependents of a failed step proceed (continueOnError on the step or its group). */
export function tolerated(run: RunRecord, step: StepRecord): boolean {
  if (step.status !== 'failed') return false;
  const index = planIndex(run.plan);
  const plan = index.step(step.id) ?? index.group(step.id);
  return !!plan?.continueOnError;
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

/** A declared duration as written: "2h", "5m", "30s". */
export function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${ms / 1000}s`;
}
