/**
 * The control plane's converters between its domain values and the agent
 * protocol's messages, one per direction: what the run machine decides
 * (control-plane/scheduler/) goes out as Assign/Release/Cancel; what agents
 * send comes in as StepReport and log lines. Nothing else in the control
 * plane sees proto enum strings; the mappings are checked against the proto
 * types at compile time.
 */
import { checkExtends } from '../common/check-extends.js';
import type { Assign, Cancel, DepStatus, LogChunkOut, PlanStep, Release, StepEventOut, StepSecret } from '../proto/index.js';
import type { StepPlan } from '../common/workflow/model/plan.js';
import type { LogRecord, RunRecord, StepPhase, StepRecord, StepReport, StepStatus } from './model/run.js';
import type { AssignOrder } from './scheduler/run-machine.js';

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

export function toRelease(run: RunRecord, step: StepRecord, tolerated: boolean): Release {
  return { runId: run.id, stepId: step.id, status: DEP_STATUS[step.status], outputs: step.outputs, tolerated };
}

/** An agent's slice of a run, with the secret values its steps use. */
export function toAssign(order: AssignOrder, secretsFor?: (step: StepPlan) => StepSecret[]): Assign {
  const { run, agent, steps } = order;
  return {
    runId: run.id,
    workflow: run.workflow,
    steps: steps.map((s) => toWireStep(s, agent)),
    params: run.params,
    paramsJson: run.plan.paramsJson,
    runStartedMs: run.startedMs,
    released: order.released.map((r) => toRelease(run, r.step, r.tolerated)),
    secrets: secretsFor ? steps.flatMap(secretsFor) : [],
  };
}

/** A cancel of one step, or of the whole run on the agent when `stepId` is ''. */
export function toCancel(runId: string, stepId: string, reason: string): Cancel {
  return stepId ? { runId, stepId, reason } : { runId, reason };
}

type WirePhase = Exclude<StepEventOut['phase'], 'STEP_PHASE_UNSPECIFIED'>;
const PHASE: Record<WirePhase, StepPhase> = {
  STEP_PHASE_STARTED: 'started',
  STEP_PHASE_RETRYING: 'retrying',
  STEP_PHASE_LOST: 'lost',
  STEP_PHASE_SUCCEEDED: 'succeeded',
  STEP_PHASE_FAILED: 'failed',
  STEP_PHASE_CANCELLED: 'cancelled',
  STEP_PHASE_SKIPPED: 'skipped',
};
// Every domain phase has a wire phase (the Record above covers every wire phase).
checkExtends<StepPhase, (typeof PHASE)[WirePhase]>();

/** An agent's StepEvent as the run machine takes it; undefined for a phase that changes nothing. */
export function fromStepEvent(ev: StepEventOut): StepReport | undefined {
  const phase = PHASE[ev.phase as WirePhase];
  if (!phase) return undefined;
  const { runId, stepId, attempt, exitCode, startedAtMs, endedAtMs, cpuSeconds, peakRssBytes, outputs, message } = ev;
  return { runId, stepId, attempt, phase, exitCode, startedAtMs, endedAtMs, cpuSeconds, peakRssBytes, outputs, message };
}

const STREAM: Record<Exclude<LogChunkOut['stream'], 'LOG_STREAM_UNSPECIFIED'>, LogRecord['stream']> = { LOG_STREAM_STDOUT: 'stdout', LOG_STREAM_STDERR: 'stderr' };
checkExtends<LogRecord['stream'], (typeof STREAM)[keyof typeof STREAM]>();

/** A LogChunk's stream (unset: stdout). */
export function fromLogStream(stream: LogChunkOut['stream']): LogRecord['stream'] {
  return STREAM[stream as keyof typeof STREAM] ?? 'stdout';
}
