/**
 * The rules of docs/protocol.md that an agent's sequenced messages must keep,
 * as pure checks: AgentSessions asks them before anything is applied and
 * answers a broken one with Reject{code, rule, seq} (the agent stops: a
 * conforming agent never breaks one, so retrying could not help).
 *
 * Each check names its rule by the id it has in docs/protocol.md, so an
 * implementer reading a Reject finds the sentence it broke.
 */
import type { StepRecord, StepReport } from './model/run.js';
import { attemptId as attemptIdOf, MAX_ATTEMPTS } from './scheduler/attempts.js';

/** Reject codes of protocol violations (docs/errors.md). */
export type ViolationCode = 'SEQ_GAP' | 'BAD_SEQ' | 'BAD_ATTEMPT' | 'EVENT_ORDER';

export interface Violation {
  code: ViolationCode;
  /** The rule's id in docs/protocol.md. */
  rule: string;
  message: string;
}

/** What to do with a sequenced message, given the highest seq applied from its agent. */
export type SeqVerdict = 'apply' | 'duplicate' | Violation;

/** Rules `seq-positive`, `seq-next` and `seq-gap`. */
export function checkSeq(appliedSeq: number, seq: number): SeqVerdict {
  if (!Number.isSafeInteger(seq) || seq < 1) {
    return { code: 'BAD_SEQ', rule: 'seq-positive', message: `a StepEvent or LogChunk must carry a seq of 1 or more; got ${seq}` };
  }
  if (seq <= appliedSeq) return 'duplicate';
  if (seq === appliedSeq + 1) return 'apply';
  return {
    code: 'SEQ_GAP',
    rule: 'seq-gap',
    message: `seq ${seq} after ${appliedSeq}: seqs grow by one; messages ${appliedSeq + 1}..${seq - 1} are missing (resend from Welcome.applied_seq + 1)`,
  };
}

/** Phases an event of an attempt (attempt >= 1) may have; SKIPPED is a step's, never an attempt's. */
const ATTEMPT_PHASES: ReadonlySet<StepReport['phase']> = new Set(['started', 'succeeded', 'failed', 'cancelled', 'lost', 'retrying']);
/** Phases of a step that ends with no attempt running (attempt 0). */
const STEP_PHASES: ReadonlySet<StepReport['phase']> = new Set(['skipped', 'cancelled', 'failed']);

/**
 * Rules `attempt-number`, `attempt-id` and `event-order` for one StepEvent of
 * `agent`, against the step as the control plane holds it. Undefined: the
 * event may be applied. `step` undefined (an unknown run or step) or a step
 * that never was this agent's: not judged here (it is ignored, as before).
 */
export function checkStepEvent(agent: string, ev: StepReport, wireAttemptId: string, step: StepRecord | undefined): Violation | undefined {
  const n = ev.attempt;
  if (!Number.isSafeInteger(n) || n < 0) return bad(`attempt ${n} is not a whole number of 0 or more`);
  if (n === 0) {
    if (!STEP_PHASES.has(ev.phase)) return bad(`a ${ev.phase.toUpperCase()} event must name an attempt (1 or more); attempt 0 is only for SKIPPED, or CANCELLED/FAILED with no attempt running`);
    if (wireAttemptId) return { code: 'BAD_ATTEMPT', rule: 'attempt-id', message: `attempt 0 carries no attempt id; got "${wireAttemptId}"` };
    return undefined;
  }
  if (!ATTEMPT_PHASES.has(ev.phase)) return bad(`a ${ev.phase.toUpperCase()} event names no attempt: send it with attempt 0`);
  const expected = attemptIdOf(ev.runId, ev.stepId, n, agent);
  if (wireAttemptId !== expected) {
    return { code: 'BAD_ATTEMPT', rule: 'attempt-id', message: `attempt_id must be "${expected}" (run/step/attempt/Welcome.agent_id); got "${wireAttemptId}"` };
  }
  if (!step || (step.agent !== agent && !step.previousAgents.includes(agent))) return undefined;
  // No history yet: none was reported, unless the record was stored before histories were kept (a start is recorded): that one cannot tell.
  if (!step.attempts && step.startedMs) return undefined;
  const history = step.attempts ?? [];
  const mine = history.filter((a) => a.agent === agent);
  const known = mine.some((a) => a.attempt === n);
  // A full history may have dropped the attempt (or the one before it): not judged.
  if (!known && history.length >= MAX_ATTEMPTS) return undefined;
  if (ev.phase === 'started') {
    // Attempt numbers grow by one per step and agent; the history keeps the newest attempts, so n - 1 is in it when it was ever reported.
    const newest = Math.max(0, ...mine.map((a) => a.attempt));
    if (!known && n > 1 && newest !== n - 1) {
      return bad(`attempt ${n} started, but this agent's last attempt of ${ev.runId}/${ev.stepId} is ${newest || 'none'}: attempts are numbered 1, 2, 3, ... per step and agent`);
    }
    return undefined;
  }
  if (!known) {
    return {
      code: 'EVENT_ORDER',
      rule: 'event-order',
      message: `${ev.phase.toUpperCase()} for attempt ${expected}, which never reported STARTED: an attempt's first event is STARTED`,
    };
  }
  return undefined;
}

function bad(message: string): Violation {
  return { code: 'BAD_ATTEMPT', rule: 'attempt-number', message };
}
