/**
 * A step's attempt history (StepRecord.attempts): every attempt the control
 * plane hears of, on any agent. An attempt whose agent was declared lost (or
 * stopped reporting) stops deciding its step, but a partitioned agent may
 * well finish it: what it reports later is recorded here, and nowhere else,
 * so the step keeps the outcome its onAgentLost policy gave it and the
 * history still shows what really happened (docs/reliability.md,
 * "Superseded attempts").
 */
import type { AttemptRecord, AttemptStatus, StepPhase, StepRecord, StepReport } from '../model/run.js';

/**
 * Attempts kept per step; the oldest are dropped past it, so a step that
 * retries for a long time keeps a bounded record (the log lines of dropped
 * attempts stay in the run's log).
 */
export const MAX_ATTEMPTS = 20;

/** Why a lost agent's attempts were superseded; the notes of their late results quote it. */
export const AGENT_LOST = 'the agent was declared lost';
/** Why the step-deadline backstop superseded an attempt. */
export const NO_RESULT = "the control plane stopped waiting for it past the step's timeout";

const PHASE_STATUS: Partial<Record<StepPhase, AttemptStatus>> = {
  started: 'running',
  // This attempt failed; the agent starts the next one after its backoff.
  retrying: 'failed',
  lost: 'lost',
  succeeded: 'succeeded',
  failed: 'failed',
  cancelled: 'cancelled',
};

const VERB: Record<AttemptStatus, string> = { running: 'started', succeeded: 'completed', failed: 'failed', cancelled: 'cancelled', lost: 'lost' };

/** The id of an agent's attempt, built from the reporting agent's identity (never from a name a message carries). */
export function attemptId(runId: string, stepId: string, attempt: number, agent: string): string {
  return `${runId}/${stepId}/${attempt}/${agent}`;
}

/** Whether `id` names an attempt of this run and step on `agent`: an agent may report only its own attempts. */
export function isOwnAttempt(runId: string, stepId: string, agent: string, id: string): boolean {
  const prefix = `${runId}/${stepId}/`;
  const suffix = `/${agent}`;
  return id.startsWith(prefix) && id.endsWith(suffix) && /^[1-9][0-9]*$/.test(id.slice(prefix.length, id.length - suffix.length));
}

/**
 * Applies an agent's event to its attempt's entry, adding the entry when it
 * is new. Undefined for events of no attempt (a step skipped, or cancelled
 * before it started).
 */
export function recordEvent(runId: string, step: StepRecord, agent: string, ev: StepReport, now: number): AttemptRecord | undefined {
  const status = PHASE_STATUS[ev.phase];
  if (!status || !ev.attempt) return undefined;
  const id = attemptId(runId, step.id, ev.attempt, agent);
  const history = (step.attempts ??= []);
  let a = history.find((x) => x.id === id);
  if (!a) {
    a = { n: (history.at(-1)?.n ?? 0) + 1, id, agent, attempt: ev.attempt, status: 'running', exitCode: 0, startedMs: 0, endedMs: 0, message: '', superseded: '', note: '' };
    history.push(a);
    if (history.length > MAX_ATTEMPTS) history.splice(0, history.length - MAX_ATTEMPTS);
  }
  if (ev.startedAtMs) a.startedMs = ev.startedAtMs;
  // An end is final, but for "lost", which the attempt's real end replaces. (A
  // cancel during a retry backoff names the attempt that failed: it stays failed.)
  if (status !== 'running' && (a.status === 'running' || a.status === 'lost')) {
    a.status = status;
    a.exitCode = ev.exitCode;
    a.endedMs = ev.endedAtMs || now;
    a.message = ev.message;
  }
  return a;
}

/**
 * Records an event that does not decide its step: the attempt's agent no
 * longer has the step (superseded), or the step had already ended.
 */
export function recordLate(runId: string, step: StepRecord, agent: string, ev: StepReport, now: number): AttemptRecord | undefined {
  const a = recordEvent(runId, step, agent, ev, now);
  if (!a) return undefined;
  if (!a.superseded && step.previousAgents.includes(agent)) {
    // An attempt started after its agent was superseded: the same reason holds.
    a.superseded = step.attempts!.filter((x) => x.agent === agent && x.superseded).pop()?.superseded ?? AGENT_LOST;
  }
  a.note = `${VERB[a.status]} on ${agent} after ${a.superseded || `the step was ${step.status}`}`;
  return a;
}

/**
 * The step stops following `agent`'s unfinished attempts (`why`; `next`
 * says what the step does instead): they count as lost until their agent
 * reports their real end.
 */
export function supersede(step: StepRecord, agent: string, why: string, next: string) {
  for (const a of step.attempts ?? []) {
    if (a.agent !== agent || a.status !== 'running') continue;
    a.status = 'lost';
    a.superseded = why;
    a.note = `${why}; ${next}`;
  }
}
