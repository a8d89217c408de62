/**
 * The protocol rules the control plane enforces on an agent's sequenced
 * messages (control-plane/link-rules.ts; docs/protocol.md, "Rules"), table
 * by table, with no link: each refusal names its Reject code and rule.
 */
import { describe, expect, it } from 'vitest';
import { checkSeq, checkStepEvent } from '../../control-plane/link-rules.js';
import type { AttemptRecord, StepRecord, StepReport } from '../../control-plane/model/run.js';
import { MAX_ATTEMPTS } from '../../control-plane/scheduler/attempts.js';

const AGENT = 'edge-1';

function report(phase: StepReport['phase'], attempt: number): StepReport {
  return { runId: 'r1', stepId: 's', attempt, phase, exitCode: 0, startedAtMs: 0, endedAtMs: 0, cpuSeconds: 0, peakRssBytes: 0, outputs: {}, message: '' };
}

function attempt(n: number, agent = AGENT, status: AttemptRecord['status'] = 'running'): AttemptRecord {
  return { n, id: `r1/s/${n}/${agent}`, agent, attempt: n, status, exitCode: 0, startedMs: 0, endedMs: 0, message: '', superseded: '', note: '' };
}

function step(attempts: AttemptRecord[] | undefined, over: Partial<StepRecord> = {}): StepRecord {
  return {
    id: 's', parent: '', kind: 'run', held: false, agent: AGENT, previousAgents: [], status: 'running', attempt: 0, exitCode: 0,
    startedMs: 0, endedMs: 0, cpuSeconds: 0, peakRssBytes: 0, outputs: {}, message: '', attempts, ...over,
  };
}

const idOf = (n: number, agent = AGENT) => (n ? `r1/s/${n}/${agent}` : '');

describe('link rules - sequence numbers', () => {
  it.each([
    [0, 1, 'apply'],
    [7, 8, 'apply'],
    [7, 7, 'duplicate'],
    [7, 3, 'duplicate'],
  ] as const)('link rules - seq after applied %i: %i is %s', (applied, seq, verdict) => {
    expect(checkSeq(applied, seq)).toBe(verdict);
  });

  it('link rules - a seq that skips numbers is SEQ_GAP, naming the missing ones', () => {
    expect(checkSeq(3, 5)).toEqual({ code: 'SEQ_GAP', rule: 'seq-gap', message: expect.stringMatching(/^seq 5 after 3: seqs grow by one; messages 4\.\.4 are missing/) });
    expect(checkSeq(0, 1e15)).toMatchObject({ code: 'SEQ_GAP', rule: 'seq-gap' });
  });

  it.each([0, -1, 1.5, Number.NaN])('link rules - a StepEvent or LogChunk with seq %s is BAD_SEQ', (seq) => {
    expect(checkSeq(0, seq)).toMatchObject({ code: 'BAD_SEQ', rule: 'seq-positive', message: expect.stringMatching(/must carry a seq of 1 or more/) });
  });
});

describe('link rules - attempts and event order', () => {
  it.each<[string, StepReport['phase'], number, AttemptRecord[]]>([
    ['the first STARTED', 'started', 1, []],
    ['a repeated STARTED', 'started', 1, [attempt(1)]],
    ['STARTED of the next attempt', 'started', 2, [attempt(1, AGENT, 'failed')]],
    ['SUCCEEDED after STARTED', 'succeeded', 1, [attempt(1)]],
    ['RETRYING after STARTED', 'retrying', 1, [attempt(1)]],
    ['a repeated terminal event (after an agent restart)', 'failed', 1, [attempt(1, AGENT, 'failed')]],
    ['the real end of an attempt the control plane took for lost', 'succeeded', 1, [attempt(1, AGENT, 'lost')]],
    ['SKIPPED with attempt 0', 'skipped', 0, []],
    ['CANCELLED with attempt 0 (waiting for a retry)', 'cancelled', 0, [attempt(1, AGENT, 'failed')]],
    ['FAILED with attempt 0 (before a start)', 'failed', 0, []],
    ['attempt 1 on this agent after another agent had attempts 1 and 2', 'started', 1, [attempt(1, 'edge-2'), attempt(2, 'edge-2')]],
  ])('link rules - allowed: %s', (_what, phase, n, attempts) => {
    expect(checkStepEvent(AGENT, report(phase, n), idOf(n), step(attempts))).toBeUndefined();
  });

  it('link rules - a terminal event of an attempt that never reported STARTED is EVENT_ORDER', () => {
    expect(checkStepEvent(AGENT, report('succeeded', 1), idOf(1), step([]))).toEqual({
      code: 'EVENT_ORDER',
      rule: 'event-order',
      message: 'SUCCEEDED for attempt r1/s/1/edge-1, which never reported STARTED: an attempt\'s first event is STARTED',
    });
    expect(checkStepEvent(AGENT, report('retrying', 2), idOf(2), step([attempt(1)]))).toMatchObject({ code: 'EVENT_ORDER' });
    // Another agent's STARTED does not count for this one.
    expect(checkStepEvent(AGENT, report('failed', 1), idOf(1), step([attempt(1, 'edge-2')]))).toMatchObject({ code: 'EVENT_ORDER' });
  });

  it.each<[string, StepReport['phase'], number, string, RegExp]>([
    ['STARTED with attempt 0', 'started', 0, '', /a STARTED event must name an attempt/],
    ['SUCCEEDED with attempt 0', 'succeeded', 0, '', /a SUCCEEDED event must name an attempt/],
    ['RETRYING with attempt 0', 'retrying', 0, '', /attempt 0 is only for SKIPPED/],
    ['SKIPPED with an attempt', 'skipped', 1, idOf(1), /a SKIPPED event names no attempt: send it with attempt 0/],
    ['a negative attempt', 'started', -1, '', /attempt -1 is not a whole number of 0 or more/],
    ['attempt 3 started after attempt 1', 'started', 3, idOf(3), /attempt 3 started, but this agent's last attempt of r1\/s is 1/],
    ['attempt 2 started with no attempt 1', 'started', 2, idOf(2), /last attempt of r1\/s is none/],
  ])('link rules - BAD_ATTEMPT attempt-number: %s', (_what, phase, n, id, message) => {
    const attempts = n === 3 ? [attempt(1)] : [];
    expect(checkStepEvent(AGENT, report(phase, n), id, step(attempts))).toEqual({ code: 'BAD_ATTEMPT', rule: 'attempt-number', message: expect.stringMatching(message) });
  });

  it('link rules - an attempt id that is not run/step/attempt/agent, or one on attempt 0, is BAD_ATTEMPT attempt-id', () => {
    expect(checkStepEvent(AGENT, report('started', 1), 'r1/s/1/someone-else', step([]))).toEqual({
      code: 'BAD_ATTEMPT',
      rule: 'attempt-id',
      message: 'attempt_id must be "r1/s/1/edge-1" (run/step/attempt/Welcome.agent_id); got "r1/s/1/someone-else"',
    });
    expect(checkStepEvent(AGENT, report('started', 1), 'r1/s/0/edge-1', step([]))).toMatchObject({ rule: 'attempt-id' });
    expect(checkStepEvent(AGENT, report('skipped', 0), 'r1/s/0/edge-1', step([]))).toMatchObject({ code: 'BAD_ATTEMPT', rule: 'attempt-id' });
  });

  it('link rules - order is not judged where the control plane cannot know: unknown step, a step never this agent\'s, a record stored before histories, a full history', () => {
    const ev = report('succeeded', 1);
    expect(checkStepEvent(AGENT, ev, idOf(1), undefined)).toBeUndefined();
    expect(checkStepEvent(AGENT, ev, idOf(1), step([], { agent: 'edge-2' }))).toBeUndefined();
    expect(checkStepEvent(AGENT, ev, idOf(1), step(undefined, { startedMs: 5 }))).toBeUndefined();
    // No history and no start recorded: a new step, judged.
    expect(checkStepEvent(AGENT, ev, idOf(1), step(undefined))).toMatchObject({ code: 'EVENT_ORDER' });
    const full = Array.from({ length: MAX_ATTEMPTS }, (_, i) => attempt(i + 1, 'edge-2'));
    expect(checkStepEvent(AGENT, ev, idOf(1), step(full))).toBeUndefined();
    // A superseded agent's events are judged too (its step is in previousAgents).
    expect(checkStepEvent(AGENT, ev, idOf(1), step([], { agent: 'edge-2', previousAgents: [AGENT] }))).toMatchObject({ code: 'EVENT_ORDER' });
  });
});
