/**
 * The run machine: every decision about runs that are pending or running,
 * as a function `step(state, event, now) → { state, effects }`. It starts
 * and queues runs (per-workflow concurrency), applies what agents report,
 * hands out fan-out slots (maxParallel) and stops rollouts (maxFailures),
 * releases cross-agent dependencies, cancels, enforces deadlines, and
 * follows each workflow's onAgentLost policy.
 *
 * It does no I/O and reads no clock: what it wants done comes back as
 * effects (data) that a thin service performs (control-plane/runs.ts), so
 * the same events in the same order give the same effects — which is what a
 * replicated control plane replays from a log (DESIGN.md §6). It updates
 * the state and the records it is given in place and returns them: copying a
 * run of 10,000 steps per event would make a fan-out quadratic.
 */
import type { LogRecord, RunChange, RunRecord, StepRecord, StepReport } from '../model/run.js';
import type { StepPlan } from '../../common/workflow/model/plan.js';
import { applyReport, applyLogLines } from './reports.js';
import { agentConnected, agentLost, sweepStepDeadlines } from './agent-policy.js';
import { Decisions, formatMs } from './decisions.js';
import type { FleetAgent } from '../../common/workflow/model/target.js';
import { RunProgress } from './run-progress.js';
import { placeWaiting, sweepWaits } from './capacity.js';
import { deviceAffinity } from './admission.js';
import { decide, gateTimeout, resumeGates, type Decision } from './approvals.js';

export interface MachineConfig {
  /** For messages: how long an agent is silent before it counts as lost. */
  lostAfterMs: number;
  /** How long past its timeout the control plane waits for a step's result before failing it itself. */
  stepDeadlineSlackMs: number;
}

export interface RunsState {
  readonly config: MachineConfig;
  /** Runs pending or running and on disk: what agent events, reconnects and sweeps look at (finished runs need nothing). */
  readonly active: Map<string, RunRecord>;
  /** Runs whose record is being written: they count for concurrency, nothing else sees them yet. */
  readonly submitting: Map<string, RunRecord>;
  /** Counts and indexes of active runs, derived from their records on first use. */
  readonly progress: Map<string, RunProgress>;
}

/** Log lines of one chunk, decoded and cut at line ends by the service (control-plane/log-intake.ts). */
export interface LogLines {
  runId: string;
  stepId: string;
  attemptId: string;
  stream: LogRecord['stream'];
  atMs: number;
  /** The agent message's seq (0 when unknown). */
  seq: number;
  lines: string[];
}

export type RunEvent =
  /** After a restart: the stored runs that are pending or running. */
  | { type: 'resume'; runs: RunRecord[] }
  /** A new run (see newRun) whose record is being written. */
  | { type: 'submitting'; run: RunRecord }
  /** Its record is on disk: it starts, or waits its turn. */
  | { type: 'submitted'; runId: string }
  /** Its record could not be written: it never existed. */
  | { type: 'submitFailed'; runId: string }
  /** An agent reported a step; `run` is the stored run it names (any run, ended ones included), if any. */
  | { type: 'report'; agent: string; run: RunRecord | undefined; report: StepReport }
  | { type: 'log'; agent: string; run: RunRecord | undefined; log: LogLines }
  | { type: 'cancel'; runId: string; reason: string }
  /** A cancel could not be sent: the agent is not connected. */
  | { type: 'undelivered'; runId: string; agent: string }
  /** The run's deadline timer fired. */
  | { type: 'deadline'; runId: string }
  /** An agent said Hello; `attempts` are the attempts it runs, each with the stored run it names. */
  | { type: 'agentConnected'; agent: string; attempts: { id: string; run: RunRecord | undefined }[] }
  /** An agent was silent past lostAfter (or was revoked); `fleet` is the fleet now, for moving its steps. */
  | { type: 'agentLost'; agent: string; cause: string; fleet: FleetAgent[] }
  /** Once a second: the step-deadline backstop, and the end of waits for capacity. */
  | { type: 'sweep' }
  /** The fleet gained capacity (an agent said Hello, or stopped draining): steps waiting for an agent may be placed. */
  | { type: 'capacity'; fleet: FleetAgent[] }
  /** An approver decided a gate (scheduler/approvals.ts). */
  | ({ type: 'decide' } & Decision)
  /** A gate's timer fired. */
  | { type: 'approvalTimeout'; runId: string; stepId: string };

/** A step's slice for one agent, or a release of one finished dependency. Converted to the wire by control-plane/wire.ts. */
export interface AssignOrder {
  run: RunRecord;
  agent: string;
  steps: StepPlan[];
  /** Finished needs of these steps that run elsewhere: they ride along as releases. */
  released: { step: StepRecord; tolerated: boolean }[];
}

export type Effect =
  /** Write the run record; `steps` names the steps that changed (absent: all may have). */
  | { type: 'persist'; run: RunRecord; steps?: StepRecord[] }
  | { type: 'assign'; order: AssignOrder }
  | { type: 'release'; run: RunRecord; agent: string; step: StepRecord; tolerated: boolean }
  /** `stepId` '' cancels the whole run on that agent; `undelivered` is fed back when the agent is not connected. */
  | { type: 'cancel'; agent: string; runId: string; stepId: string; reason: string; reportUndelivered: boolean }
  | { type: 'setTimer'; runId: string; atMs: number }
  | { type: 'clearTimer'; runId: string }
  /** One timer per open approval gate, to its deadline. */
  | { type: 'setApprovalTimer'; runId: string; stepId: string; atMs: number }
  | { type: 'clearApprovalTimer'; runId: string; stepId: string }
  | { type: 'notify'; change: RunChange }
  | { type: 'appendLog'; run: RunRecord; records: LogRecord[] }
  /** The run ended: caches kept for it may go. */
  | { type: 'ended'; run: RunRecord }
  /** A line for the operator's log; `peer` names the agent whose messages caused it (rate-limited per agent). */
  | { type: 'log'; level: 'info' | 'warn' | 'error'; fields: Record<string, unknown>; msg: string; peer?: string };

export function initialState(config: MachineConfig): RunsState {
  return { config, active: new Map(), submitting: new Map(), progress: new Map() };
}

/** Applies one event; `now` is the only clock the machine reads. */
export function step(state: RunsState, event: RunEvent, now: number): { state: RunsState; effects: Effect[] } {
  const d = new Decisions(state, now);
  switch (event.type) {
    case 'resume':
      for (const run of event.runs) if (run.status === 'running' || run.status === 'pending') state.active.set(run.id, run);
      for (const run of event.runs) if (run.status === 'running') d.armDeadline(run);
      for (const run of event.runs) if (run.status === 'running') resumeGates(d, run);
      for (const wf of new Set(event.runs.filter((r) => r.status === 'pending').map((r) => r.workflow))) d.startQueued(wf);
      break;
    case 'submitting':
      state.submitting.set(event.run.id, event.run);
      d.effects.push({ type: 'persist', run: event.run });
      break;
    case 'submitted': {
      const run = state.submitting.get(event.runId);
      if (!run) break;
      state.submitting.delete(run.id);
      state.active.set(run.id, run);
      d.effects.push({ type: 'notify', change: { type: 'run', run } });
      d.log('info', { run: run.id, workflow: run.workflow, steps: run.plan.steps.length, queued: run.status === 'pending' }, 'run submitted');
      // A run queued behind one that ended (or was never written) while this one was being written starts now.
      if (run.status === 'pending') d.startQueued(run.workflow);
      else d.start(run);
      break;
    }
    case 'submitFailed':
      state.submitting.delete(event.runId);
      break;
    case 'report':
      applyReport(d, event.agent, event.run, event.report);
      break;
    case 'log':
      applyLogLines(d, event.agent, event.run, event.log);
      break;
    case 'cancel':
      d.cancel(event.runId, event.reason);
      break;
    case 'undelivered':
      d.undelivered(event.runId, event.agent);
      break;
    case 'deadline': {
      const run = state.active.get(event.runId);
      if (!run || run.status !== 'running') break;
      run.deadlineExceeded = true;
      d.log('warn', { run: run.id, deadlineMs: run.plan.deadlineMs }, 'run deadline exceeded; cancelling its steps');
      d.cancel(run.id, `deadline of ${formatMs(run.plan.deadlineMs)} exceeded`);
      break;
    }
    case 'agentConnected':
      agentConnected(d, event.agent, event.attempts);
      break;
    case 'agentLost':
      agentLost(d, event.agent, event.cause, event.fleet);
      break;
    case 'sweep':
      sweepStepDeadlines(d);
      sweepWaits(d);
      break;
    case 'capacity':
      placeWaiting(d, event.fleet, deviceAffinity(state));
      break;
    case 'decide':
      decide(d, event);
      break;
    case 'approvalTimeout':
      gateTimeout(d, event.runId, event.stepId);
      break;
  }
  return { state, effects: d.effects };
}

export { admission, deviceAffinity, newRun } from './admission.js';
