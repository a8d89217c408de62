/**
 * The edge between wire shapes (proto-loader objects with enum name strings)
 * and the SDK's domain types. Only this file knows proto enum names.
 */
import type {
  AgentInfoOut,
  AttemptInfoOut,
  DeviceInfoOut,
  FactsOut,
  HeartbeatOut,
  LogLineOut,
  PlanPreviewOut,
  ProblemOut,
  RunEventOut,
  RunInfoOut,
  RunStatus as WireRunStatus,
  StatsOut,
  WorkflowStatsOut,
  StepInfoOut,
  ValidateWorkflowResponseOut,
  WorkflowInfoOut,
} from '../proto/index.js';
import type { Problem } from './errors.js';
import type {
  Agent,
  AgentState,
  Attempt,
  AttemptStatus,
  Device,
  Facts,
  Heartbeat,
  LogLine,
  LogStream,
  PlanPreview,
  PreviewStep,
  RegisteredWorkflow,
  Run,
  RunEvent,
  RunStatus,
  Stats,
  Step,
  StepKind,
  StepStatus,
  TargetStrategy,
  WorkflowStats,
  WorkflowValidation,
} from './types.js';

function lowerEnum<T extends string>(value: string, prefix: string, allowed: readonly T[], fallback: T): T {
  const name = value.startsWith(prefix) ? value.slice(prefix.length).toLowerCase() : '';
  return (allowed as readonly string[]).includes(name) ? (name as T) : fallback;
}

const RUN_STATUSES: readonly RunStatus[] = ['pending', 'running', 'succeeded', 'failed', 'cancelled'];
const STEP_STATUSES: readonly StepStatus[] = ['pending', 'running', 'succeeded', 'failed', 'skipped', 'cancelled'];
const AGENT_STATES: readonly AgentState[] = ['connected', 'disconnected', 'lost'];
const LOG_STREAMS: readonly LogStream[] = ['stdout', 'stderr'];
const ATTEMPT_STATUSES: readonly AttemptStatus[] = ['running', 'succeeded', 'failed', 'cancelled', 'lost'];
const STEP_KINDS: readonly StepKind[] = ['run', 'command', 'script', 'http', 'file', 'sleep', 'ssh', 'approval', 'group'];

export function toDevice(d: DeviceInfoOut): Device {
  return {
    name: d.name,
    host: d.host,
    port: d.port,
    user: d.user,
    credential: d.credential,
    network: d.network,
    labels: { ...d.labels },
    maxSessions: d.maxSessions,
    createdAt: d.createdMs,
    updatedAt: d.updatedMs,
    proxies: [...d.proxies],
  };
}

/** Step kinds and strategies travel as lower-case text; a server older than kinds sends "" (a `run` step). */
function stepKind(kind: string): StepKind {
  return (STEP_KINDS as readonly string[]).includes(kind) ? (kind as StepKind) : 'run';
}

function strategy(value: string): TargetStrategy {
  return value === 'all' ? 'all' : 'one';
}

/** The run status as the API spells it, for requests (ListRuns filter). */
export function runStatusToWire(status: RunStatus): WireRunStatus {
  return `RUN_STATUS_${status.toUpperCase()}` as WireRunStatus;
}

/** The accepted run statuses, for validating user input. */
export const RUN_STATUS_VALUES = RUN_STATUSES;

function facts(f: FactsOut): Facts {
  return {
    hostname: f.hostname,
    os: f.os,
    osRelease: f.osRelease,
    arch: f.arch,
    cpuModel: f.cpuModel,
    cpuCount: f.cpuCount,
    memoryBytes: Number(f.memoryBytes),
    disks: f.disks.map((d) => ({ mount: d.mount, fs: d.fs, sizeBytes: Number(d.sizeBytes) })),
    ipAddresses: [...f.ipAddresses],
    agentVersion: f.agentVersion,
  };
}

function heartbeat(h: HeartbeatOut): Heartbeat {
  return {
    at: Number(h.atMs),
    cpuPercent: h.cpuPercent,
    memoryPercent: h.memoryPercent,
    memoryUsedBytes: Number(h.memoryUsedBytes),
    memoryTotalBytes: Number(h.memoryTotalBytes),
    diskPercent: h.diskPercent,
    load: [...h.load],
    netRxBytesPerSec: Number(h.netRxBytesPerSec),
    netTxBytesPerSec: Number(h.netTxBytesPerSec),
    runningSteps: h.runningSteps,
    journalBytes: h.journalBytes,
    journalUnacked: h.journalUnacked,
    journalDroppedLogBytes: h.journalDroppedLogBytes,
    rejectedControlMessages: h.rejectedControlMessages,
  };
}

/** Converts an AgentInfo message. */
export function toAgent(a: AgentInfoOut): Agent {
  const agent: Agent = {
    name: a.name,
    state: lowerEnum(a.state, 'AGENT_STATE_', AGENT_STATES, 'disconnected'),
    labels: { ...a.labels },
    lastSeen: Number(a.lastSeenMs),
    connectedSince: Number(a.connectedSinceMs),
    draining: a.draining,
    runningSteps: a.runningSteps,
    transport: a.transport,
    peer: a.peer,
  };
  if (a.facts) agent.facts = facts(a.facts);
  if (a.lastHeartbeat) agent.heartbeat = heartbeat(a.lastHeartbeat);
  return agent;
}

/** Converts a StepInfo message. */
export function toStep(s: StepInfoOut): Step {
  return {
    id: s.id,
    parent: s.parent,
    kind: stepKind(s.kind),
    agent: s.agent,
    status: lowerEnum(s.status, 'STEP_STATUS_', STEP_STATUSES, 'pending'),
    attempt: s.attempt,
    exitCode: s.exitCode,
    startedAt: Number(s.startedMs),
    endedAt: Number(s.endedMs),
    cpuSeconds: s.cpuSeconds,
    peakRssBytes: Number(s.peakRssBytes),
    outputs: { ...s.outputs },
    message: s.message,
    needs: [...s.needs],
    isFinally: s.isFinally,
    attempts: s.attempts.map(toAttempt),
    waiting: s.waiting,
    blocked: s.blocked,
    reusedFrom: s.reusedFrom,
    ...(s.approval && {
      approval: {
        message: s.approval.message,
        approvers: [...s.approval.approvers],
        deadline: Number(s.approval.deadlineMs),
        onTimeout: s.approval.onTimeout === 'approve' ? 'approve' : 'fail',
        decision: (['approved', 'rejected', 'timed-out'] as const).find((d) => d === s.approval!.decision) ?? '',
        decidedBy: s.approval.decidedBy,
        reason: s.approval.reason,
        decidedAt: Number(s.approval.decidedMs),
      },
    }),
  };
}

/** Converts an AttemptInfo message. */
export function toAttempt(a: AttemptInfoOut): Attempt {
  return {
    number: a.number,
    id: a.attemptId,
    agent: a.agent,
    agentAttempt: a.agentAttempt,
    status: lowerEnum(a.status, 'ATTEMPT_STATUS_', ATTEMPT_STATUSES, 'running'),
    exitCode: a.exitCode,
    startedAt: Number(a.startedMs),
    endedAt: Number(a.endedMs),
    message: a.message,
    superseded: a.superseded,
    note: a.note,
  };
}

/** Converts a RunInfo message. */
export function toRun(r: RunInfoOut): Run {
  return {
    id: r.id,
    workflow: r.workflow,
    workflowVersion: r.workflowVersion,
    status: lowerEnum(r.status, 'RUN_STATUS_', RUN_STATUSES, 'pending'),
    createdAt: Number(r.createdMs),
    startedAt: Number(r.startedMs),
    endedAt: Number(r.endedMs),
    params: { ...r.params },
    planHash: r.planHash,
    message: r.message,
    steps: r.steps.map(toStep),
    stepCounts: { total: 0, pending: 0, running: 0, succeeded: 0, failed: 0, skipped: 0, cancelled: 0, ...r.stepCounts },
    trigger: r.trigger || 'api',
    idempotencyKey: r.idempotencyKey,
    rerunOf: r.rerunOf,
    deduplicated: r.deduplicated,
  };
}

/** Converts a LogLine message; the text loses its line terminator. */
export function toLogLine(l: LogLineOut): LogLine {
  return {
    runId: l.runId,
    stepId: l.stepId,
    attemptId: l.attemptId,
    attempt: l.attempt,
    agent: l.agent,
    stream: lowerEnum(l.stream, 'LOG_STREAM_', LOG_STREAMS, 'stdout'),
    text: l.text.replace(/\r?\n$/, ''),
    at: Number(l.atMs),
  };
}

/** Converts a RunEvent message; undefined for a body this SDK does not know. */
export function toRunEvent(e: RunEventOut): RunEvent | undefined {
  if (e.body === 'run' && e.run) return { type: 'run', run: toRun(e.run) };
  if (e.body === 'step' && e.step) return { type: 'step', step: toStep(e.step) };
  if (e.body === 'log' && e.log) return { type: 'log', line: toLogLine(e.log) };
  return undefined;
}

/** Converts a Problem message. */
export function toProblem(p: ProblemOut): Problem {
  return {
    path: p.path,
    line: p.line,
    column: p.column,
    message: p.message,
    severity: p.severity === 'warning' ? 'warning' : 'error',
  };
}

/** Document order: problems without a position first, then by line and column (stable). */
function byPosition(a: Problem, b: Problem): number {
  return a.line - b.line || a.column - b.column;
}

/** Converts a ValidateWorkflowResponse; problems come in document order. */
export function toValidation(v: ValidateWorkflowResponseOut): WorkflowValidation {
  const problems = v.problems.map(toProblem).sort(byPosition);
  const out: WorkflowValidation = { workflow: v.workflow, valid: v.valid && !problems.some((p) => p.severity === 'error'), problems };
  if (v.registeredVersion > 0) out.registry = { latest: v.registeredVersion, sameAs: v.sameAsVersion };
  return out;
}

/** Converts a PlanPreview message. */
export function toPlanPreview(p: PlanPreviewOut): PlanPreview {
  return {
    workflow: p.workflow,
    version: p.version,
    hash: p.hash,
    params: { ...p.params },
    waves: p.waves.map((w) => ({
      index: w.index,
      steps: w.steps.map(
        (s): PreviewStep => ({
          id: s.id,
          kind: stepKind(s.kind),
          needs: [...s.needs],
          target: s.target,
          strategy: strategy(s.strategy),
          matches: s.matches.map((m) => ({
            name: m.name,
            state: lowerEnum(m.state, 'AGENT_STATE_', AGENT_STATES, 'disconnected'),
            draining: m.draining,
          })),
          instances: [...s.instances],
          agent: s.agent,
          when: s.when,
          isFinally: s.isFinally,
          maxParallel: s.maxParallel,
          maxFailures: s.maxFailures,
          waitMs: Number(s.waitMs),
        }),
      ),
    })),
    warnings: p.problems.map(toProblem).filter((x) => x.severity === 'warning'),
    blockers: p.problems.map(toProblem).filter((x) => x.severity === 'error'),
  };
}

/** Converts a WorkflowInfo message. */
export function toRegisteredWorkflow(w: WorkflowInfoOut): RegisteredWorkflow {
  return {
    name: w.name,
    version: w.version,
    versions: w.versions,
    hash: w.hash,
    createdAt: Number(w.createdMs),
    description: w.description,
    source: w.source,
    changed: w.changed,
    ...(w.warnings?.length ? { warnings: [...w.warnings] } : {}),
  };
}

/** Converts a Stats message: the window's bounds and each bucket's start as ms since epoch. */
export function toStats(s: StatsOut): Stats {
  return { from: s.fromMs, to: s.toMs, overall: toWorkflowStats(s.overall), workflows: s.workflows.map(toWorkflowStats) };
}

function toWorkflowStats(w: WorkflowStatsOut | null): WorkflowStats {
  const { trend, ...figures } = w ?? EMPTY_WORKFLOW_STATS;
  return { ...figures, trend: trend.map((b) => ({ start: b.startMs, ended: b.ended, succeeded: b.succeeded, failed: b.failed, cycleP50Ms: b.cycleP50Ms })) };
}

const EMPTY_WORKFLOW_STATS: WorkflowStatsOut = {
  workflow: '', runsEnded: 0, runsSucceeded: 0, runsFailed: 0, runsCancelled: 0, runsActive: 0, completionRate: 0, cycleP50Ms: 0, cycleP95Ms: 0, cycleMaxMs: 0,
  attempts: 0, attemptsFailed: 0, attemptErrorRate: 0, runErrorRate: 0, cpuSeconds: 0, peakRssBytes: 0, fleetCpuPercent: 0, fleetMemoryPercent: 0, trend: [],
};
