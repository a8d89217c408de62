/** Conversions between domain values and protobuf message shapes (enum strings, field names). */
import type { Assign, DepStatus, PlanStep, Release, StepPhase, StepSecret } from '../proto/index.js';
import { planIndex } from './compiler/plan-index.js';
import type { StepPlan } from './compiler/plan.js';
import type { RunRecord, StepRecord, StepStatus } from './store/store.js';

export function toWireStep(step: StepPlan, agent: string): PlanStep {
  return {
    id: step.id,
    needs: step.needs,
    kind: step.kind,
    run: step.run,
    command: step.command,
    script: step.script,
    http: step.http,
    file: step.file,
    sleepMs: step.sleepMs,
    env: step.env,
    target: {
      labels: step.target.labels,
      agent: step.target.agent,
      strategy: step.target.strategy === 'all' ? 'STRATEGY_ALL' : 'STRATEGY_ONE',
      matchExpressions: step.target.matchExpressions,
      device: step.target.device,
    },
    timeoutMs: step.timeoutMs,
    retry: {
      attempts: step.retry.attempts,
      backoff: step.retry.backoff === 'exponential' ? 'BACKOFF_EXPONENTIAL' : 'BACKOFF_FIXED',
      initialMs: step.retry.initialMs,
      maxMs: step.retry.maxMs,
      jitter: step.retry.jitter,
      retryOn: step.retry.retryOn,
    },
    when: step.when,
    agent,
    continueOnError: step.continueOnError,
    isFinally: step.isFinally,
    parent: step.parent,
    itemJson: step.itemJson,
    ssh: step.ssh,
  };
}

const DEP_STATUS: Record<StepStatus, DepStatus> = {
  pending: 'DEP_STATUS_UNSPECIFIED',
  running: 'DEP_STATUS_UNSPECIFIED',
  succeeded: 'DEP_STATUS_SUCCEEDED',
  failed: 'DEP_STATUS_FAILED',
  skipped: 'DEP_STATUS_SKIPPED',
  cancelled: 'DEP_STATUS_CANCELLED',
};

/** Whether dependents of a failed step proceed (continueOnError on the step or its group). */
export function tolerated(run: RunRecord, step: StepRecord): boolean {
  if (step.status !== 'failed') return false;
  const index = planIndex(run.plan);
  const plan = index.step(step.id) ?? index.group(step.id);
  return !!plan?.continueOnError;
}

export function toRelease(run: RunRecord, step: StepRecord): Release {
  return { runId: run.id, stepId: step.id, status: DEP_STATUS[step.status], outputs: step.outputs, tolerated: tolerated(run, step) };
}

/**
 * The slice of a run for one agent: its unfinished steps that are not held
 * back by a maxParallel limit, out of `placed` (the step records placed on
 * it). Needs that are not in the slice are remote; those already finished
 * ride along as releases.
 */
export function toAssign(
  run: RunRecord,
  agent: string,
  placed: Iterable<StepRecord>,
  isTerminal: (s: StepRecord) => boolean,
  secretsFor?: (step: StepPlan) => StepSecret[],
): Assign | undefined {
  const index = planIndex(run.plan);
  const mine: StepPlan[] = [];
  for (const rec of placed) if (rec.agent === agent && !rec.held && !isTerminal(rec)) mine.push(index.step(rec.id)!);
  if (mine.length === 0) return undefined;
  const inSlice = new Set(mine.map((s) => s.id));
  const released = new Set<string>();
  for (const s of mine) for (const n of s.needs) if (!inSlice.has(n) && isTerminal(run.steps[n])) released.add(n);
  return {
    runId: run.id,
    workflow: run.workflow,
    steps: mine.map((s) => toWireStep(s, agent)),
    params: run.params,
    paramsJson: run.plan.paramsJson,
    runStartedMs: run.startedMs,
    released: [...released].map((id) => toRelease(run, run.steps[id])),
    secrets: secretsFor ? mine.flatMap(secretsFor) : [],
  };
}

/** The step status an agent-reported phase moves a step to (undefined: no change of status). */
export function statusForPhase(phase: StepPhase): StepStatus | undefined {
  switch (phase) {
    case 'STEP_PHASE_STARTED':
    case 'STEP_PHASE_RETRYING':
    // An attempt lost in an agent restart: the agent retries it or reports the step failed.
    case 'STEP_PHASE_LOST':
      return 'running';
    case 'STEP_PHASE_SUCCEEDED':
      return 'succeeded';
    case 'STEP_PHASE_FAILED':
      return 'failed';
    case 'STEP_PHASE_CANCELLED':
      return 'cancelled';
    case 'STEP_PHASE_SKIPPED':
      return 'skipped';
    default:
      return undefined;
  }
}
