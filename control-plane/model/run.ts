/**
 * The records of a run as the scheduler decides on them and the store keeps
 * them: runs, their steps, each step's attempt history and log lines. Plain
 * data with no behaviour; the store persists exactly these shapes.
 */
import type { RunPlan } from '../../common/workflow/model/plan.js';

export type RunStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export type StepStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped' | 'cancelled';

export const TERMINAL_STEP: ReadonlySet<StepStatus> = new Set(['succeeded', 'failed', 'skipped', 'cancelled']);
export const TERMINAL_RUN: ReadonlySet<RunStatus> = new Set(['succeeded', 'failed', 'cancelled']);

export interface StepRecord {
  id: string;
  /** For a fan-out or forEach instance: its declared step; '' otherwise. */
  parent: string;
  /** The step kind, or "group" for a fan-out/forEach parent (which runs nowhere itself). */
  kind: string;
  /** An instance waiting for a maxParallel slot: not yet sent to its agent. */
  held: boolean;
  agent: string;
  /** Agents this step was taken away from (lost), which must not finish it. */
  previousAgents: string[];
  status: StepStatus;
  attempt: number;
  exitCode: number;
  startedMs: number;
  endedMs: number;
  cpuSeconds: number;
  peakRssBytes: number;
  outputs: Record<string, string>;
  message: string;
  /** Every attempt the control plane heard of, oldest first (absent in records stored before it was kept). */
  attempts?: AttemptRecord[];
  /**
   * A step waiting for capacity (target.wait, no agent yet): when its wait
   * ends (ms since the epoch), set once its needs are done; absent before.
   */
  waitUntilMs?: number;
  /** Copied from this run by a re-run (`drover rerun`): the step did not run again; absent otherwise. */
  reusedFrom?: string;
  /** An approval step's gate, once it opened (scheduler/approvals.ts). */
  approval?: ApprovalRecord;
}

/** An approval gate as it opened and was decided; kept with the step for its history. */
export interface ApprovalRecord {
  /** The message shown to approvers, templates resolved when the gate opened. */
  message: string;
  /** When it times out (ms since the epoch), fixed when it opened; 0: never. */
  deadlineMs: number;
  /** '' while open. */
  decision: '' | 'approved' | 'rejected' | 'timed-out';
  /** The approver's token name (or id), or "timeout". */
  decidedBy: string;
  reason: string;
  decidedMs: number;
}

export type AttemptStatus = 'running' | 'succeeded' | 'failed' | 'cancelled' | 'lost';

/**
 * One attempt of a step on one agent, as its events told it: the step's
 * current attempt, an earlier one that failed and was retried, or one that
 * was superseded (its agent was declared lost or stopped reporting, and the
 * step failed or moved on) whose late results are kept here without deciding
 * the step.
 */
export interface AttemptRecord {
  /** Its place in the step's history, from 1, across agents (`drover logs --attempt N`); kept when older entries are dropped. */
  n: number;
  /** `run/step/attempt/agent`, as log records name it. */
  id: string;
  agent: string;
  /** The attempt number as its agent counts (each agent counts its own from 1). */
  attempt: number;
  status: AttemptStatus;
  exitCode: number;
  startedMs: number;
  endedMs: number;
  message: string;
  /** Why the step stopped following this attempt, e.g. "the agent was declared lost"; '' while it decides the step. */
  superseded: string;
  /** What became of it after that, e.g. "completed on edge-1 after the agent was declared lost". */
  note: string;
}

export interface RunRecord {
  id: string;
  workflow: string;
  status: RunStatus;
  createdMs: number;
  startedMs: number;
  endedMs: number;
  params: Record<string, string>;
  message: string;
  cancelRequested: boolean;
  /** Set when the run's deadline passed: it ends failed, not cancelled. */
  deadlineExceeded: boolean;
  /** Registry version it was started from; 0 when run from a file. */
  workflowVersion: number;
  plan: RunPlan;
  steps: Record<string, StepRecord>;
  /** Values of params declared secret, sealed for this run; removed when it ends. */
  sealedParams?: string;
  /** What started it: "api" (also when absent: runs stored before triggers), "webhook:NAME", "schedule:NAME", "nats:SUBJECT", "rerun". */
  trigger?: string;
  /** The idempotency key it was started with; absent for none. */
  idempotencyKey?: string;
  /** The run this one re-ran; absent when it is not a re-run. */
  rerunOf?: string;
  /** How a re-run was asked for ("all", "from:STEP", "failed-only"), with rerunOf; absent otherwise. */
  rerunMode?: string;
}

export interface LogRecord {
  /** time, ms */
  t: number;
  step: string;
  attempt: string;
  agent: string;
  stream: 'stdout' | 'stderr';
  text: string;
  /** The agent message (LogChunk) this line came from: lets a resent chunk be recognised. */
  seq?: number;
}

/** A change to a run that watchers (WatchRun, `logs --follow`, the dashboard) are told of. */
export type RunChange =
  | { type: 'run'; run: RunRecord }
  | { type: 'step'; run: RunRecord; step: StepRecord }
  | { type: 'log'; run: RunRecord; log: LogRecord };

/** What an agent reports of a step attempt (a StepEvent, converted at the edge by control-plane/wire.ts). */
export type StepPhase = 'started' | 'retrying' | 'lost' | 'succeeded' | 'failed' | 'cancelled' | 'skipped';

export interface StepReport {
  runId: string;
  stepId: string;
  /** The agent's attempt number (0 for a step that never started: skipped, or cancelled while waiting). */
  attempt: number;
  phase: StepPhase;
  exitCode: number;
  startedAtMs: number;
  endedAtMs: number;
  cpuSeconds: number;
  peakRssBytes: number;
  outputs: Record<string, string>;
  message: string;
}
