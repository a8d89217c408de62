/**
 * Runs: submission (compile, place, persist, dispatch), the run and step state
 * machine driven by agents' StepEvents, releases of cross-agent dependencies,
 * cancellation, and re-dispatch when an agent comes back.
 */
import { randomBytes } from 'node:crypto';
import type { LogChunkOut, StepEventOut } from '../proto/index.js';
import { compile } from './compiler/compile.js';
import { ApiError, InvalidWorkflowError, NotFoundError } from './errors.js';
import { RunTopics } from './events.js';
import type { Fleet } from './fleet.js';
import type { Logger } from './log.js';
import { place } from './scheduler/placement.js';
import { TERMINAL_RUN, TERMINAL_STEP, type RunRecord, type StepRecord, type Store } from './store/store.js';
import { statusForPhase, toAssign, toRelease } from './wire.js';

export interface SubmitRequest {
  source: string;
  filename: string;
  params: Record<string, string>;
  expectPlanHash?: string;
}

const isTerminal = (s: StepRecord) => TERMINAL_STEP.has(s.status);

export class Runs {
  readonly topics = new RunTopics();
  /** Decoders per attempt and stream, so multi-byte characters split across chunks survive. */
  private decoders = new Map<string, TextDecoder>();

  constructor(
    private readonly store: Store,
    private readonly fleet: Fleet,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

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

  async submit(req: SubmitRequest): Promise<RunRecord> {
    const file = req.filename || 'workflow';
    const { plan, problems } = compile({ source: req.source, params: req.params });
    if (!plan) throw new InvalidWorkflowError(file, problems);
    if (req.expectPlanHash && req.expectPlanHash !== plan.hash) {
      throw new ApiError(
        'PLAN_CHANGED',
        `the plan changed since it was previewed (expected hash ${req.expectPlanHash.slice(0, 12)}, now ${plan.hash.slice(0, 12)})`,
        'preview it again with `drover plan` and run with the new hash',
      );
    }
    const placement = place(plan.steps, this.fleet.snapshot());
    if (placement.problems.length) {
      throw new ApiError(
        'NO_MATCHING_AGENT',
        placement.problems.map((p) => `${p.path}: ${p.message}`).join('; '),
        'start an agent with matching --label flags, or change the step\'s target; nothing was started',
        placement.problems,
      );
    }
    const now = this.now();
    const run: RunRecord = {
      id: newRunId(now),
      workflow: plan.workflow,
      status: 'running',
      createdMs: now,
      startedMs: now,
      endedMs: 0,
      params: plan.params,
      message: '',
      cancelRequested: false,
      plan,
      steps: Object.fromEntries(
        plan.steps.map((s) => [
          s.id,
          { id: s.id, agent: placement.agents[s.id], status: 'pending', attempt: 0, exitCode: 0, startedMs: 0, endedMs: 0, cpuSeconds: 0, peakRssBytes: 0, outputs: {}, message: '' },
        ]),
      ),
    };
    this.store.putRun(run);
    await this.store.flush();
    this.log.info({ run: run.id, workflow: run.workflow, steps: plan.steps.length }, 'run submitted');
    for (const agent of agentsOf(run)) this.dispatch(run, agent);
    return run;
  }

  /** Sends an agent its slice of a run (again after a reconnect: agents ignore what they already have). */
  private dispatch(run: RunRecord, agent: string) {
    const assign = toAssign(run, agent, isTerminal);
    if (assign) this.fleet.send(agent, { assign });
  }

  /** An agent (re)connected: give it every unfinished slice and repeat pending cancels. */
  agentConnected(agent: string) {
    for (const run of this.store.listRuns()) {
      if (TERMINAL_RUN.has(run.status)) continue;
      if (!Object.values(run.steps).some((s) => s.agent === agent)) continue;
      if (run.cancelRequested) this.fleet.send(agent, { cancel: { runId: run.id, reason: run.message } });
      else this.dispatch(run, agent);
    }
  }

  applyStepEvent(agent: string, ev: StepEventOut) {
    const run = this.store.getRun(ev.runId);
    const step = run?.steps[ev.stepId];
    if (!run || !step) {
      this.log.warn({ agent, run: ev.runId, step: ev.stepId }, 'event for an unknown run or step ignored');
      return;
    }
    if (step.agent !== agent) {
      this.log.warn({ agent, owner: step.agent, run: run.id, step: step.id }, 'agent reported another agent\'s step; ignored');
      return;
    }
    const status = statusForPhase(ev.phase);
    if (!status || isTerminal(step)) return;
    step.status = status;
    step.attempt = ev.attempt || step.attempt;
    if (ev.startedAtMs) step.startedMs = ev.startedAtMs;
    if (ev.phase === 'STEP_PHASE_RETRYING') step.message = ev.message;
    if (TERMINAL_STEP.has(status)) {
      step.exitCode = ev.exitCode;
      step.endedMs = ev.endedAtMs || this.now();
      step.cpuSeconds = ev.cpuSeconds;
      step.peakRssBytes = ev.peakRssBytes;
      step.outputs = { ...ev.outputs };
      step.message = ev.message;
    }
    this.store.putRun(run);
    this.topics.publish({ type: 'step', run, step });
    if (TERMINAL_STEP.has(status)) {
      this.releaseDependents(run, step);
      this.checkFinished(run);
    }
  }

  applyLog(agent: string, chunk: LogChunkOut) {
    const run = this.store.getRun(chunk.runId);
    const step = run?.steps[chunk.stepId];
    if (!run || !step || step.agent !== agent) {
      this.log.warn({ agent, run: chunk.runId, step: chunk.stepId }, 'log for an unknown or foreign step ignored');
      return;
    }
    const stream = chunk.stream === 'LOG_STREAM_STDERR' ? 'stderr' : 'stdout';
    const key = `${chunk.attemptId}:${stream}`;
    let dec = this.decoders.get(key);
    if (!dec) this.decoders.set(key, (dec = new TextDecoder()));
    const text = dec.decode(chunk.data, { stream: true });
    // Agents cut chunks at line ends, so each line becomes one record.
    for (const line of text.match(/[^\n]*\n|[^\n]+$/g) ?? []) {
      const log = { t: chunk.atMs || this.now(), step: step.id, attempt: chunk.attemptId, agent, stream, text: line } as const;
      this.store.appendLog(run.id, log);
      this.topics.publish({ type: 'log', run, log });
    }
  }

  async cancel(id: string, reason: string): Promise<RunRecord> {
    const run = this.get(id);
    if (TERMINAL_RUN.has(run.status)) {
      throw new ApiError('RUN_FINISHED', `run ${id} already ${run.status}; there is nothing to cancel`);
    }
    run.cancelRequested = true;
    run.message = reason || 'cancelled by request';
    for (const agent of agentsOf(run)) {
      const sent = this.fleet.send(agent, { cancel: { runId: run.id, reason: run.message } });
      // An unreachable agent's steps end now; it gets the cancel again when it returns.
      if (!sent) {
        for (const step of Object.values(run.steps)) {
          if (step.agent === agent && !isTerminal(step)) this.finishStep(run, step, 'cancelled', `cancelled while agent ${agent} was unreachable`);
        }
      }
    }
    this.store.putRun(run);
    this.checkFinished(run);
    await this.store.flush();
    return run;
  }

  private finishStep(run: RunRecord, step: StepRecord, status: StepRecord['status'], message: string) {
    step.status = status;
    step.endedMs = this.now();
    step.message = message;
    this.topics.publish({ type: 'step', run, step });
    this.releaseDependents(run, step);
  }

  /** Tells agents whose steps need `step` (and run elsewhere) that it finished. */
  private releaseDependents(run: RunRecord, step: StepRecord) {
    const targets = new Set<string>();
    for (const s of run.plan.steps) {
      const owner = run.steps[s.id].agent;
      if (owner !== step.agent && s.needs.includes(step.id) && !isTerminal(run.steps[s.id])) targets.add(owner);
    }
    for (const agent of targets) this.fleet.send(agent, { release: toRelease(run, step) });
  }

  private checkFinished(run: RunRecord) {
    const steps = Object.values(run.steps);
    if (!steps.every(isTerminal)) return;
    const failed = steps.find((s) => s.status === 'failed' && !run.plan.steps.find((p) => p.id === s.id)?.continueOnError);
    run.status = run.cancelRequested ? 'cancelled' : failed ? 'failed' : 'succeeded';
    if (failed && !run.cancelRequested) run.message = `step ${failed.id} failed${failed.message ? `: ${failed.message}` : ''}`;
    run.endedMs = this.now();
    for (const key of this.decoders.keys()) if (key.startsWith(`${run.id}/`)) this.decoders.delete(key);
    this.store.putRun(run);
    this.log.info({ run: run.id, status: run.status, ms: run.endedMs - run.startedMs }, 'run finished');
    this.topics.publish({ type: 'run', run });
  }
}

function agentsOf(run: RunRecord): string[] {
  return [...new Set(Object.values(run.steps).map((s) => s.agent))].sort();
}

/** Sortable, readable run ids: r-YYMMDD-HHMMSS-xxxx (UTC). */
export function newRunId(now: number): string {
  const d = new Date(now).toISOString();
  return `r-${d.slice(2, 4)}${d.slice(5, 7)}${d.slice(8, 10)}-${d.slice(11, 13)}${d.slice(14, 16)}${d.slice(17, 19)}-${randomBytes(2).toString('hex')}`;
}
