/** The API's edge: store records and live state -> API messages, and request enums -> domain values. Nothing else in api/ converts. */
import type { AgentInfo, ApprovalInfo, AttemptInfo, DeviceInfo, LogLine, RunInfo, StepCounts, StepInfo } from '../../proto/index.js';
import type { ApprovalPlan } from '../../common/workflow/model/plan.js';
import type { ApprovalRecord } from '../model/run.js';
import type { ListRunsRequest__Output } from '../../proto/gen/drover/v1/ListRunsRequest.js';
import type { LiveAgent } from '../fleet.js';
import type { Launched } from '../launch-keys.js';
import { planIndex } from '../model/plan-index.js';
import { waitOf, type WaitingView } from '../scheduler/waiting.js';
import type { AttemptRecord, DeviceRecord, LogRecord, RunRecord, RunStatus, StepRecord } from '../store/store.js';

const upper = (s: string) => s.toUpperCase();

export function toAgentInfo(a: LiveAgent): AgentInfo {
  return {
    name: a.record.name,
    state: toAgentState(a.state),
    labels: a.record.labels,
    facts: a.record.facts,
    lastHeartbeat: a.heartbeat ?? null,
    lastSeenMs: a.record.lastSeenMs,
    connectedSinceMs: a.connectedSinceMs,
    draining: a.record.draining,
    runningSteps: a.heartbeat?.runningSteps ?? 0,
    transport: a.conn?.transport ?? '',
    peer: a.conn?.peer ?? '',
  };
}

/** An agent's state as AgentInfo and the plan preview's matches carry it. */
export function toAgentState(state: LiveAgent['state']): AgentInfo['state'] {
  return `AGENT_STATE_${upper(state)}` as AgentInfo['state'];
}

/** `view`: the fleet and queue now, for the step's waiting reason ('' without one). */
export function toStepInfo(run: RunRecord, s: StepRecord, view?: WaitingView): StepInfo {
  const index = planIndex(run.plan);
  const plan = index.step(s.id) ?? index.group(s.id);
  const wait = view ? waitOf(run, s, view) : undefined;
  return {
    id: s.id,
    agent: s.agent,
    status: `STEP_STATUS_${upper(s.status)}` as StepInfo['status'],
    attempt: s.attempt,
    exitCode: s.exitCode,
    startedMs: s.startedMs,
    endedMs: s.endedMs,
    cpuSeconds: s.cpuSeconds,
    peakRssBytes: s.peakRssBytes,
    outputs: s.outputs,
    message: s.message,
    needs: plan?.isFinally ? [] : (plan?.needs ?? []),
    isFinally: plan?.isFinally ?? false,
    parent: s.parent,
    kind: s.kind,
    attempts: (s.attempts ?? []).map(toAttemptInfo),
    waiting: wait?.reason ?? '',
    blocked: wait?.blocked ?? false,
    reusedFrom: s.reusedFrom ?? '',
    approval: plan && 'approval' in plan && plan.approval ? toApprovalInfo(plan.approval, s.approval) : null,
  };
}

/** An approval step's gate: what it asks and of whom, and (once open) its deadline and decision. */
export function toApprovalInfo(plan: ApprovalPlan, rec: ApprovalRecord | undefined): ApprovalInfo {
  return {
    message: rec?.message ?? '',
    approvers: plan.approvers,
    deadlineMs: rec?.deadlineMs ?? 0,
    onTimeout: plan.onTimeout,
    decision: rec?.decision ?? '',
    decidedBy: rec?.decidedBy ?? '',
    reason: rec?.reason ?? '',
    decidedMs: rec?.decidedMs ?? 0,
  };
}

export function toAttemptInfo(a: AttemptRecord): AttemptInfo {
  return {
    number: a.n,
    attemptId: a.id,
    agent: a.agent,
    agentAttempt: a.attempt,
    status: `ATTEMPT_STATUS_${upper(a.status)}` as AttemptInfo['status'],
    exitCode: a.exitCode,
    startedMs: a.startedMs,
    endedMs: a.endedMs,
    message: a.message,
    superseded: !!a.superseded,
    note: a.note,
  };
}

/** `view`: as for toStepInfo. */
export function toRunInfo(run: RunRecord, view?: WaitingView): RunInfo {
  return { ...toRunSummary(run), steps: planIndex(run.plan).order.map((id) => toStepInfo(run, run.steps[id], view)) };
}

/**
 * A launch's answer: the run with `deduplicated` when the key had started it
 * before; a first run pruned since is its id and workflow, and a message.
 */
export function launchedInfo(l: Launched, view?: WaitingView): RunInfo {
  if (l.run) return { ...toRunInfo(l.run, view), deduplicated: l.deduplicated };
  return { id: l.runId, workflow: l.workflow, deduplicated: true, message: `run ${l.runId} was started by this idempotency key earlier and is no longer kept` };
}

/** A run without its steps (runs lists: WatchRuns, the dashboard's runs feed); `stepCounts` says how they stand. */
export function toRunSummary(run: RunRecord): RunInfo {
  return {
    id: run.id,
    workflow: run.workflow,
    status: `RUN_STATUS_${upper(run.status)}` as RunInfo['status'],
    createdMs: run.createdMs,
    startedMs: run.startedMs,
    endedMs: run.endedMs,
    params: run.params,
    steps: [],
    planHash: run.plan.hash,
    message: run.message,
    workflowVersion: run.workflowVersion,
    stepCounts: stepCounts(run),
    idempotencyKey: run.idempotencyKey ?? '',
    trigger: run.trigger ?? 'api',
    rerunOf: run.rerunOf ?? '',
  };
}

/** A run's steps by status (RunInfo.stepCounts): instances one by one, group entries not at all. */
export function stepCounts(run: RunRecord): Required<StepCounts> {
  const c: Required<StepCounts> = { total: 0, pending: 0, running: 0, succeeded: 0, failed: 0, skipped: 0, cancelled: 0 };
  for (const s of Object.values(run.steps)) {
    if (s.kind === 'group') continue;
    c.total++;
    c[s.status]++;
  }
  return c;
}

/** An attempt's place in its step's history (AttemptInfo.number); 0 when the history no longer holds it. */
export function attemptNumber(step: StepRecord | undefined, attemptId: string): number {
  return step?.attempts?.find((a) => a.id === attemptId)?.n ?? 0;
}

/** `step`: the line's step record, whose history numbers its attempt. */
export function toLogLine(runId: string, r: LogRecord, step?: StepRecord): LogLine {
  return {
    runId,
    stepId: r.step,
    attemptId: r.attempt,
    stream: r.stream === 'stderr' ? 'LOG_STREAM_STDERR' : 'LOG_STREAM_STDOUT',
    text: r.text,
    atMs: r.t,
    agent: r.agent,
    attempt: attemptNumber(step, r.attempt),
  };
}

/** `proxies`: the agents that reach the device's network (Devices.proxies). */
export function toDeviceInfo(d: DeviceRecord, proxies: string[]): DeviceInfo {
  return {
    name: d.name,
    host: d.host,
    port: d.port,
    user: d.user,
    credential: d.credential,
    network: d.network,
    labels: d.labels,
    maxSessions: d.maxSessions,
    createdMs: d.createdMs,
    updatedMs: d.updatedMs,
    proxies,
  };
}

/** A ListRuns status filter; '' for any. */
export function fromRunStatus(status: ListRunsRequest__Output['status']): RunStatus | '' {
  return status === 'RUN_STATUS_UNSPECIFIED' ? '' : (status.slice('RUN_STATUS_'.length).toLowerCase() as RunStatus);
}
