/**
 * What an agent's reports do to a run: a step event moves the step (and its
 * group, its dependents, the run), unless the agent no longer has the step
 * or the step had ended — then it is only kept in the attempt history. Log
 * lines are stored under their attempt, also a superseded one's.
 */
import { TERMINAL_STEP, type RunRecord, type StepReport, type StepStatus } from '../model/run.js';
import { isOwnAttempt, recordEvent, recordLate } from './attempts.js';
import { isTerminal, type Decisions } from './decisions.js';
import type { LogLines } from './run-machine.js';

/** The step status a reported phase moves a step to. */
const PHASE_STEP: Record<StepReport['phase'], StepStatus> = {
  started: 'running',
  retrying: 'running',
  // An attempt lost in an agent restart: the agent retries it or reports the step failed.
  lost: 'running',
  succeeded: 'succeeded',
  failed: 'failed',
  cancelled: 'cancelled',
  skipped: 'skipped',
};

export function applyReport(d: Decisions, agent: string, run: RunRecord | undefined, ev: StepReport) {
  const step = run?.steps[ev.stepId];
  if (!run || !step) {
    d.log('warn', { agent, run: ev.runId, step: ev.stepId }, 'event for an unknown run or step ignored', agent);
    return;
  }
  if (step.agent !== agent && !step.previousAgents.includes(agent)) {
    d.log('warn', { agent, owner: step.agent, run: run.id, step: step.id }, "agent reported another agent's step; ignored", agent);
    return;
  }
  const status = PHASE_STEP[ev.phase];
  if (step.agent !== agent || isTerminal(step)) {
    // Superseded (the step moved on or failed without this agent), or the
    // step had ended: kept in the history, the step's outcome stays.
    if (!recordLate(run.id, step, agent, ev, d.now)) return;
    d.persist(run, [step]);
    d.notifyStep(run, step);
    return;
  }
  d.change(run, step, () => {
    const attempt = recordEvent(run.id, step, agent, ev, d.now);
    // An attempt superseded earlier whose agent has the step again (it came back and the step moved back to it) decides it now.
    if (attempt?.superseded) attempt.superseded = attempt.note = '';
    step.status = status;
    step.attempt = ev.attempt || step.attempt;
    if (ev.startedAtMs) step.startedMs = ev.startedAtMs;
    if (ev.phase === 'retrying' || ev.phase === 'lost') step.message = ev.message;
    if (TERMINAL_STEP.has(status)) {
      step.exitCode = ev.exitCode;
      step.endedMs = ev.endedAtMs || d.now;
      step.cpuSeconds = ev.cpuSeconds;
      step.peakRssBytes = ev.peakRssBytes;
      step.outputs = { ...ev.outputs };
      step.message = ev.message;
    }
  });
  d.notifyStep(run, step);
  if (step.parent) d.updateGroup(run, step.parent);
  if (TERMINAL_STEP.has(status)) {
    d.releaseDependents(run, step);
    d.checkFinished(run);
  }
}

/** Stores a chunk's lines under its attempt, also when that attempt was superseded (its agent is in previousAgents) and its run has ended. */
export function applyLogLines(d: Decisions, agent: string, run: RunRecord | undefined, log: LogLines) {
  const step = run?.steps[log.stepId];
  if (!run || !step || (step.agent !== agent && !step.previousAgents.includes(agent)) || !isOwnAttempt(run.id, step.id, agent, log.attemptId)) {
    d.log('warn', { agent, run: log.runId, step: log.stepId, attemptId: log.attemptId }, 'log for an unknown or foreign step or attempt ignored', agent);
    return;
  }
  const t = log.atMs || d.now;
  const records = log.lines.map((text) => ({ t, step: step.id, attempt: log.attemptId, agent, stream: log.stream, text, seq: log.seq }));
  d.effects.push({ type: 'appendLog', run, records });
  for (const r of records) d.effects.push({ type: 'notify', change: { type: 'log', run, log: r } });
}
