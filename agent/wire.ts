/**
 * The agent's one converter between proto messages and its own domain values
 * (slice/types.ts): Assign, Release and Cancel in; StepEvent and LogChunk
 * out. Nothing else in the agent but the link and the journal sees a proto
 * enum name ('STEP_PHASE_*', 'DEP_STATUS_*', ...).
 *
 * Each enum mapping is checked against the generated proto type at compile
 * time (Temporal's checkExtends): a value added to a proto enum, or one
 * removed, breaks the build here until the mapping says what it means.
 */
import { checkExtends } from '../common/check-extends.js';
import { celValue } from '../common/template.js';
import type { AssignOut, CancelOut, DepStatus, LogStream, PlanStepOut, ReleaseOut, RetryPolicyOut, StepPhase } from '../proto/index.js';
import type { Body } from './journal.js';
import type { Assignment, Backoff, Cancel, DoneStatus, EventFields, Phase, Release, RetryPolicy, StepSpec, Stream } from './slice/types.js';


/** An enum's named values, without the proto3 zero value. */
type Named<E> = Exclude<Extract<E, string>, `${string}_UNSPECIFIED`>;

const PHASE_OUT = {
  started: 'STEP_PHASE_STARTED',
  succeeded: 'STEP_PHASE_SUCCEEDED',
  failed: 'STEP_PHASE_FAILED',
  cancelled: 'STEP_PHASE_CANCELLED',
  lost: 'STEP_PHASE_LOST',
  skipped: 'STEP_PHASE_SKIPPED',
  retrying: 'STEP_PHASE_RETRYING',
} as const satisfies Record<Phase, Named<StepPhase>>;
checkExtends<Named<StepPhase>, (typeof PHASE_OUT)[Phase]>();

const STREAM_OUT = { stdout: 'LOG_STREAM_STDOUT', stderr: 'LOG_STREAM_STDERR' } as const satisfies Record<Stream, Named<LogStream>>;
checkExtends<Named<LogStream>, (typeof STREAM_OUT)[Stream]>();

const DEP_STATUS_IN = {
  DEP_STATUS_SUCCEEDED: 'succeeded',
  DEP_STATUS_FAILED: 'failed',
  DEP_STATUS_SKIPPED: 'skipped',
  DEP_STATUS_CANCELLED: 'cancelled',
} as const satisfies Record<Named<DepStatus>, DoneStatus>;
checkExtends<DoneStatus, (typeof DEP_STATUS_IN)[Named<DepStatus>]>();

/** BACKOFF_UNSPECIFIED is fixed too. */
const BACKOFF_IN = { BACKOFF_FIXED: 'fixed', BACKOFF_EXPONENTIAL: 'exponential' } as const satisfies Record<Named<RetryPolicyOut['backoff']>, Backoff>;
checkExtends<Backoff, (typeof BACKOFF_IN)[Named<RetryPolicyOut['backoff']>]>();

/** A Release, or undefined when its status names no end (the zero value, or one this agent does not know). */
export function releaseIn(r: ReleaseOut): Release | undefined {
  const status = DEP_STATUS_IN[r.status as Named<DepStatus>] as DoneStatus | undefined;
  return status && { runId: r.runId, stepId: r.stepId, status, outputs: { ...r.outputs }, tolerated: r.tolerated };
}

export function assignIn(a: AssignOut): Assignment {
  const steps = a.steps.map((plan) => {
    const secrets: Record<string, string> = {};
    const secretParams: Record<string, string> = {};
    for (const x of a.secrets) if (x.stepId === plan.id) (x.param ? secretParams : secrets)[x.name] = x.value;
    return { spec: stepIn(plan), secrets, secretParams };
  });
  return {
    runId: a.runId,
    workflow: a.workflow,
    params: celValue(a.paramsJson ? JSON.parse(a.paramsJson) : { ...a.params }) as Record<string, unknown>,
    startedMs: a.runStartedMs,
    steps,
    released: a.released.map(releaseIn).filter((r): r is Release => !!r),
  };
}

function stepIn(plan: PlanStepOut): StepSpec {
  const { retry, itemJson, target: _target, ...rest } = plan;
  return {
    ...rest,
    ...(retry && { retry: retryIn(retry) }),
    ...(itemJson && { item: celValue(JSON.parse(itemJson)) }),
  };
}

function retryIn(r: RetryPolicyOut): RetryPolicy {
  const backoff: Backoff = BACKOFF_IN[r.backoff as Named<RetryPolicyOut['backoff']>] ?? 'fixed';
  return { attempts: r.attempts, backoff, initialMs: r.initialMs, maxMs: r.maxMs, jitter: r.jitter, retryOn: r.retryOn };
}

/** A Cancel; one without a reason says "cancelled". */
export function cancelIn(c: CancelOut): Cancel {
  return { runId: c.runId, stepId: c.stepId, reason: c.reason || 'cancelled' };
}

export function stepEventOut(runId: string, stepId: string, attemptId: string, attempt: number, phase: Phase, fields: EventFields): Body {
  return { stepEvent: { ...fields, runId, stepId, attemptId, attempt, phase: PHASE_OUT[phase] } };
}

/** `offset`: the stream's byte offset after this chunk, for output read from an attempt's files. */
export function logChunkOut(runId: string, stepId: string, attemptId: string, stream: Stream, data: Buffer, atMs: number, offset?: number): Body {
  return { log: { runId, stepId, attemptId, stream: STREAM_OUT[stream], data, atMs, ...(offset !== undefined && { offset }) } };
}

/** A journaled LogChunk's stream (the journal reads its own records back). */
export function streamIn(s: LogStream | undefined): Stream {
  return s === 'LOG_STREAM_STDERR' || s === 2 ? 'stderr' : 'stdout';
}
