/**
 * The agent's slice machine (agent/slice/machine.ts), with a fake clock, a
 * seeded random source and an in-memory ledger: every policy it decides
 * (needs, `when`, skips, retry and backoff, cancel, finally steps, postpone,
 * recovery from the ledger) from events to effects, with no process or disk.
 */
import { describe, expect, it } from 'vitest';
import { backoffDelay, retryable } from '../../agent/slice/retry.js';
import {
  LOST_MESSAGE,
  MAX_FINISHED_SLICES,
  POSTPONE_MS,
  newSlicesState,
  runningAttempts,
  sliceStep,
  type Effect,
  type Outcome,
  type PriorAttempt,
  type SliceEvent,
} from '../../agent/slice/machine.js';
import type { AssignedStep, AttemptReport, Release, RetryPolicy, StepSpec } from '../../agent/slice/types.js';
import { assignIn, cancelIn, logChunkOut, releaseIn, stepEventOut, streamIn } from '../../agent/wire.js';
import { rng } from '../helpers/fuzz.js';

const AGENT = 'a1';
const RUN = 'r1';

function spec(id: string, over: Partial<StepSpec> = {}): StepSpec {
  return {
    id,
    needs: [],
    run: 'true',
    env: {},
    timeoutMs: 0,
    when: '',
    agent: AGENT,
    continueOnError: false,
    isFinally: false,
    kind: 'run',
    command: [],
    script: null,
    http: null,
    file: null,
    sleepMs: 0,
    parent: '',
    ssh: null,
    ...over,
  };
}

const step = (id: string, over: Partial<StepSpec> = {}, secrets: Partial<Omit<AssignedStep, 'spec'>> = {}): AssignedStep => ({
  spec: spec(id, over),
  secrets: {},
  secretParams: {},
  ...secrets,
});

const retry = (over: Partial<RetryPolicy> = {}): RetryPolicy => ({ attempts: 3, backoff: 'fixed', initialMs: 100, maxMs: 0, jitter: 0, retryOn: [], ...over });

const release = (stepId: string, status: Release['status'], over: Partial<Release> = {}): Release => ({ runId: RUN, stepId, status, outputs: {}, tolerated: false, ...over });

const id = (stepId: string, attempt: number) => `${RUN}/${stepId}/${attempt}/${AGENT}`;

/** The machine with a fake clock, a seeded random source and a ledger that the `record` effects (and a test) write. */
function harness(seed = 1) {
  const state = newSlicesState({ name: AGENT, labels: { role: 'web' }, facts: { os: 'linux' } });
  const ledger = new Map<string, PriorAttempt>();
  const detached = new Set<string>();
  const random = rng(seed);
  const h = {
    state,
    ledger,
    detached,
    now: 1_000_000,
    send(ev: SliceEvent): Effect[] {
      const { effects } = sliceStep(state, ev, { now: h.now, random, ledger: (a) => ledger.get(a), detached: (a) => detached.has(a) });
      for (const e of effects) if (e.type === 'record') ledger.set(e.attemptId, { ended: e.status, outputs: e.outputs });
      return effects;
    },
    assign(steps: AssignedStep[], released: Release[] = [], params: Record<string, unknown> = {}) {
      return h.send({ type: 'assigned', assignment: { runId: RUN, workflow: 'wf', params, startedMs: 0, steps, released } });
    },
    /** The driver's part of a start: recorded, then started. */
    started(stepId: string, attempt = 1) {
      ledger.set(id(stepId, attempt), {});
      return h.send({ type: 'started', runId: RUN, stepId, attempt, startedAtMs: h.now });
    },
    ended(stepId: string, outcome: Outcome, report: AttemptReport = {}, attempt = 1) {
      return h.send({ type: 'ended', runId: RUN, stepId, attempt, outcome, report });
    },
    /** Start attempt 1 and end it so. */
    run(stepId: string, outcome: Outcome, report: AttemptReport = {}, attempt = 1) {
      h.started(stepId, attempt);
      return h.ended(stepId, outcome, report, attempt);
    },
    timer(stepId: string, attempt: number) {
      return h.send({ type: 'timer', runId: RUN, stepId, attempt });
    },
    cancel(stepId = '', reason = 'by test') {
      return h.send({ type: 'cancel', cancel: { runId: RUN, stepId, reason } });
    },
  };
  return h;
}

const starts = (effects: Effect[]) => effects.flatMap((e) => (e.type === 'start' ? [e.attemptId] : []));
const events = (effects: Effect[]) => effects.flatMap((e) => (e.type === 'event' ? [[e.stepId, e.phase, e.fields.message ?? '']] : []));
const phases = (effects: Effect[]) => effects.flatMap((e) => (e.type === 'event' ? [`${e.stepId}:${e.phase}`] : []));
/** Each event's step, phase, attempt and attempt id: what the protocol's attempt rules look at. */
const attempts = (effects: Effect[]) => effects.flatMap((e) => (e.type === 'event' ? [[e.stepId, e.phase, e.attempt, e.attemptId]] : []));
const of = <T extends Effect['type']>(effects: Effect[], type: T) => effects.filter((e): e is Extract<Effect, { type: T }> => e.type === type);

describe('agent slice - needs', () => {
  it('agent slice - a step starts once its local needs succeeded, with no release', () => {
    const h = harness();
    expect(starts(h.assign([step('a'), step('b', { needs: ['a'] }), step('c', { needs: ['a', 'b'] })]))).toEqual([id('a', 1)]);
    expect(starts(h.run('a', { kind: 'succeeded' }))).toEqual([id('b', 1)]);
    expect(starts(h.run('b', { kind: 'succeeded' }))).toEqual([id('c', 1)]);
  });

  it('agent slice - a need on another agent is met by its release, sent with the Assign or later', () => {
    const h = harness();
    expect(starts(h.assign([step('b', { needs: ['x'] })]))).toEqual([]);
    expect(starts(h.send({ type: 'released', release: release('x', 'succeeded', { outputs: { uid: '7' } }) }))).toEqual([id('b', 1)]);

    const h2 = harness();
    expect(starts(h2.assign([step('b', { needs: ['x'] })], [release('x', 'succeeded')]))).toEqual([id('b', 1)]);
  });

  it('agent slice - a release of a step of this slice is ignored (its own result counts)', () => {
    const h = harness();
    h.assign([step('a'), step('b', { needs: ['a'] })]);
    expect(starts(h.send({ type: 'released', release: release('a', 'succeeded') }))).toEqual([]);
  });

  it('agent slice - a release for a run this agent does not have is logged and ignored', () => {
    const effects = harness().send({ type: 'released', release: release('x', 'succeeded') });
    expect(effects).toEqual([{ type: 'log', level: 'debug', fields: { run: RUN, step: 'x' }, msg: 'release for an unknown run ignored' }]);
  });

  const table: { need: Release; then: string }[] = [
    { need: release('x', 'succeeded'), then: 'started' },
    { need: release('x', 'failed'), then: 'skipped: needs x, which failed' },
    { need: release('x', 'failed', { tolerated: true }), then: 'started' },
    { need: release('x', 'skipped'), then: 'skipped: needs x, which was skipped' },
    { need: release('x', 'cancelled'), then: 'skipped: needs x, which was cancelled' },
  ];
  it.each(table)('agent slice - a dependent of a need that ended $need.status (tolerated: $need.tolerated): $then', ({ need, then }) => {
    const h = harness();
    const effects = h.assign([step('b', { needs: ['x'] })], [need]);
    if (then === 'started') expect(starts(effects)).toEqual([id('b', 1)]);
    else expect(events(effects)).toEqual([['b', 'skipped', then]]);
  });

  it('agent slice - dependents of a failed step are skipped down the chain, unless it had continueOnError', () => {
    const h = harness();
    h.assign([step('a'), step('b', { needs: ['a'] }), step('c', { needs: ['b'] })]);
    expect(events(h.run('a', { kind: 'exited' }, { exitCode: 1 }))).toEqual([
      ['a', 'failed', 'exited with code 1'],
      ['b', 'skipped', 'skipped: needs a, which failed'],
      ['c', 'skipped', 'skipped: needs b, which was skipped'],
    ]);

    const t = harness();
    t.assign([step('a', { continueOnError: true }), step('b', { needs: ['a'] })]);
    const effects = t.run('a', { kind: 'exited' }, { exitCode: 1 });
    expect(starts(effects)).toEqual([id('b', 1)]);
    expect(t.state.slices.get(RUN)!.steps.get('a')!.result).toEqual({ status: 'failed', outputs: {}, tolerated: true });
  });

  it('agent slice - a replayed Assign does not add or restart a step', () => {
    const h = harness();
    h.assign([step('a')]);
    expect(h.assign([step('a')])).toEqual([]);
  });
});

describe('agent slice - when', () => {
  const table = [
    { when: "params.role == 'engineer'", params: { role: 'engineer' }, then: 'started' },
    { when: "params.role == 'engineer'", params: { role: 'sales' }, then: 'skipped: condition "params.role == \'engineer\'" is false' },
    { when: 'params.n > 2', params: { n: 3n }, then: 'started' },
    { when: "steps.x.outputs.go == 'yes' && agent.labels.role == 'web'", params: {}, then: 'started' },
    { when: "'not a boolean'", params: {}, then: 'cannot evaluate when: condition "\'not a boolean\'" gave not a boolean, not true or false' },
  ];
  it.each(table)('agent slice - when "$when" with $params: $then', ({ when, params, then }) => {
    const h = harness();
    const effects = h.assign([step('b', { needs: ['x'], when })], [release('x', 'succeeded', { outputs: { go: 'yes' } })], params);
    if (then === 'started') expect(starts(effects)).toEqual([id('b', 1)]);
    else expect(events(effects)).toEqual([['b', then.startsWith('cannot') ? 'failed' : 'skipped', then]]);
  });

  it('agent slice - a step skipped by its condition lets its dependents go on as skipped', () => {
    const h = harness();
    const effects = h.assign([step('a', { when: 'false' }), step('b', { needs: ['a'] })]);
    expect(phases(effects)).toEqual(['a:skipped', 'b:skipped']);
  });
});

describe('agent slice - start', () => {
  it('agent slice - the start carries the step env rendered, and the template context of params, secrets, steps, run and agent', () => {
    const h = harness();
    const s = step('b', { needs: ['x'], env: { WHO: '${{ params.user }}', UID: '${{ steps.x.outputs.uid }}', TOKEN: '${{ secrets.token }}' } }, { secrets: { token: 's3cret' }, secretParams: { user: 'hidden' } });
    const [start] = of(h.assign([s], [release('x', 'succeeded', { outputs: { uid: '42' } })], { user: 'alice' }), 'start');
    expect(start.env).toEqual({ WHO: 'hidden', UID: '42', TOKEN: 's3cret' });
    expect(start.context()).toMatchObject({ run: { id: RUN, workflow: 'wf' }, agent: { name: AGENT, labels: { role: 'web' }, facts: { os: 'linux' } } });
  });

  it('agent slice - an env template that cannot be rendered fails the step before it is recorded', () => {
    const h = harness();
    const effects = h.assign([step('a', { env: { X: '${{ nope.missing }}' } })]);
    expect(starts(effects)).toEqual([]);
    expect(events(effects)[0]).toEqual(['a', 'failed', expect.stringMatching(/^cannot prepare the step: /)]);
    // No attempt started, so none is named (docs/protocol.md, rule attempt-zero), and the ledger holds nothing of it.
    expect(attempts(effects)).toEqual([['a', 'failed', 0, '']]);
    expect(of(effects, 'record')).toEqual([]);
  });

  it('agent slice - started is reported with its time; success records the outputs and removes the attempt files', () => {
    const h = harness();
    h.assign([step('a')]);
    expect(h.started('a')).toEqual([{ type: 'event', runId: RUN, stepId: 'a', attemptId: id('a', 1), attempt: 1, phase: 'started', fields: { startedAtMs: h.now } }]);
    const effects = h.ended('a', { kind: 'succeeded' }, { exitCode: 0, outputs: { k: 'v' } });
    expect(effects.slice(0, 3)).toEqual([
      { type: 'record', attemptId: id('a', 1), status: 'succeeded', outputs: { k: 'v' } },
      { type: 'removeAttempt', runId: RUN, stepId: 'a', attempt: 1 },
      { type: 'event', runId: RUN, stepId: 'a', attemptId: id('a', 1), attempt: 1, phase: 'succeeded', fields: { exitCode: 0, outputs: { k: 'v' } } },
    ]);
  });

  it('agent slice - a step that could not be launched fails without a retry', () => {
    const h = harness();
    h.assign([step('a', { retry: retry() })]);
    expect(events(h.run('a', { kind: 'unstartable', message: 'this agent cannot run steps of kind "x"' }))).toEqual([['a', 'failed', 'this agent cannot run steps of kind "x"']]);
  });

  it('agent slice - a step whose preparation failed before its start fails with attempt 0, never a terminal event without STARTED', () => {
    const h = harness();
    h.assign([step('a', { retry: retry() })]);
    const effects = h.ended('a', { kind: 'unstartable', message: 'cannot prepare the step: EACCES' });
    expect(attempts(effects)).toEqual([['a', 'failed', 0, '']]);
    expect(of(effects, 'record')).toEqual([]);
  });

  it('agent slice - a disk error postpones the same attempt by POSTPONE_MS, with nothing reported', () => {
    const h = harness();
    h.assign([step('a')]);
    const effects = h.ended('a', { kind: 'diskError', why: 'ENOSPC' });
    expect(of(effects, 'event')).toEqual([]);
    expect(of(effects, 'setTimer')).toEqual([{ type: 'setTimer', runId: RUN, stepId: 'a', attempt: 1, atMs: h.now + POSTPONE_MS }]);
    expect(runningAttempts(h.state)).toEqual([id('a', 0)]);
    h.now += POSTPONE_MS;
    expect(starts(h.timer('a', 1))).toEqual([id('a', 1)]);
  });

  it('agent slice - an attempt id the ledger holds is never started again', () => {
    const h = harness();
    h.assign([step('a', { retry: retry() })]);
    h.run('a', { kind: 'exited' }, { exitCode: 1 });
    h.ledger.set(id('a', 2), {});
    expect(h.timer('a', 2)).toEqual([{ type: 'log', level: 'warn', fields: { attemptId: id('a', 2) }, msg: 'attempt already started once; not starting it again' }]);
  });
});

describe('agent slice - retry', () => {
  const table: { policy?: Partial<RetryPolicy>; outcome: Outcome; exitCode?: number; retried: boolean; message: string }[] = [
    { policy: {}, outcome: { kind: 'exited' }, exitCode: 2, retried: true, message: 'exited with code 2' },
    { policy: { retryOn: [3] }, outcome: { kind: 'exited' }, exitCode: 2, retried: false, message: 'exited with code 2' },
    { policy: { retryOn: [3] }, outcome: { kind: 'exited' }, exitCode: 3, retried: true, message: 'exited with code 3' },
    { policy: {}, outcome: { kind: 'timeout' }, exitCode: 143, retried: true, message: "timed out after 2s; the step's process group was killed" },
    { policy: { retryOn: [1] }, outcome: { kind: 'timeout' }, exitCode: 143, retried: false, message: "timed out after 2s; the step's process group was killed" },
    { policy: { retryOn: [255] }, outcome: { kind: 'error', message: 'device unreachable' }, exitCode: 255, retried: true, message: 'device unreachable' },
    { policy: { retryOn: [1] }, outcome: { kind: 'lost' }, retried: true, message: LOST_MESSAGE },
    { policy: undefined, outcome: { kind: 'exited' }, exitCode: 1, retried: false, message: 'exited with code 1' },
    { policy: undefined, outcome: { kind: 'lost' }, retried: false, message: LOST_MESSAGE },
  ];
  it.each(table)('agent slice - retryOn $policy.retryOn, attempt ended $outcome.kind (exit $exitCode): retried $retried', ({ policy, outcome, exitCode, retried, message }) => {
    const h = harness();
    h.assign([step('a', { timeoutMs: 2000, ...(policy && { retry: retry(policy) }) })]);
    const effects = h.run('a', outcome, exitCode === undefined ? {} : { exitCode });
    if (!retried) return expect(events(effects)).toEqual([['a', 'failed', message]]);
    expect(events(effects)).toEqual([['a', 'retrying', `attempt 1 of 3 ${message}; retrying in 0.1s`]]);
    // Not 'failed' in the ledger: a restart before attempt 2 starts it.
    expect(h.ledger.get(id('a', 1))).toEqual({ ended: 'retried', outputs: {} });
    expect(of(effects, 'setTimer')).toEqual([{ type: 'setTimer', runId: RUN, stepId: 'a', attempt: 2, atMs: h.now + 100 }]);
  });

  it('agent slice - attempts exhausted: the last one fails the step', () => {
    const h = harness();
    h.assign([step('a', { retry: retry({ attempts: 2 }) })]);
    expect(phases(h.run('a', { kind: 'exited' }, { exitCode: 1 }))).toEqual(['a:retrying']);
    expect(starts(h.timer('a', 2))).toEqual([id('a', 2)]);
    expect(events(h.run('a', { kind: 'exited' }, { exitCode: 1 }, 2))).toEqual([['a', 'failed', 'exited with code 1']]);
    expect(h.ledger.get(id('a', 2))).toEqual({ ended: 'failed', outputs: {} });
  });

  it('agent slice - a failure in a cancelled run is not retried', () => {
    const h = harness();
    h.assign([step('a', { retry: retry() })]);
    h.started('a');
    h.cancel();
    expect(events(h.ended('a', { kind: 'exited' }, { exitCode: 1 }))).toEqual([['a', 'failed', 'exited with code 1']]);
  });

  it('agent slice - exponential backoff doubles from initialMs and stops at maxMs', () => {
    const p = retry({ attempts: 5, backoff: 'exponential', initialMs: 100, maxMs: 350 });
    expect([1, 2, 3, 4].map((n) => backoffDelay(p, n, () => 0))).toEqual([100, 200, 350, 350]);
    expect(backoffDelay({ ...p, maxMs: 0 }, 6, () => 0)).toBe(3200);
    expect(backoffDelay(retry({ initialMs: 250 }), 4, () => 0)).toBe(250);
  });

  it('agent slice - jitter adds at most its fraction of the delay, drawn from the random source', () => {
    const p = retry({ backoff: 'exponential', initialMs: 1000, maxMs: 4000, jitter: 0.5 });
    const random = rng(7);
    for (let attempt = 1; attempt <= 5; attempt++) {
      const base = Math.min(1000 * 2 ** (attempt - 1), 4000);
      for (let i = 0; i < 50; i++) {
        const d = backoffDelay(p, attempt, random);
        expect(d).toBeGreaterThanOrEqual(base);
        expect(d).toBeLessThanOrEqual(base * 1.5);
      }
    }
    expect(backoffDelay(p, 1, () => 1)).toBe(1500);
  });

  it('agent slice - the machine takes its jitter from the seeded source: the same seed, the same timers', () => {
    const timers = (seed: number) => {
      const h = harness(seed);
      h.assign([step('a', { retry: retry({ attempts: 4, backoff: 'exponential', jitter: 1 }) })]);
      const out: number[] = [];
      for (let n = 1; n <= 3; n++) {
        out.push(of(h.run('a', { kind: 'exited' }, { exitCode: 1 }, n), 'setTimer')[0].atMs - h.now);
        h.timer('a', n + 1);
      }
      return out;
    };
    expect(timers(3)).toEqual(timers(3));
    timers(3).forEach((d, i) => {
      expect(d).toBeGreaterThanOrEqual(100 * 2 ** i);
      expect(d).toBeLessThanOrEqual(200 * 2 ** i);
    });
    expect(timers(3)).not.toEqual(timers(4));
  });

  it('agent slice - retryable: a lost attempt is retried whatever retryOn says, never past the attempts', () => {
    const p = retry({ attempts: 2, retryOn: [9] });
    expect([retryable(p, 1, { kind: 'lost' }), retryable(p, 2, { kind: 'lost' }), retryable(p, 1, { kind: 'exited', exitCode: 9 }), retryable(undefined, 1, { kind: 'lost' })]).toEqual([true, false, true, false]);
  });
});

describe('agent slice - cancel', () => {
  it('agent slice - cancel of one running step stops its attempt; its end is reported cancelled with the reason; dependents skip', () => {
    const h = harness();
    h.assign([step('a'), step('b', { needs: ['a'] })]);
    h.started('a');
    expect(h.cancel('a', 'moved to another agent')).toEqual([{ type: 'stop', attemptId: id('a', 1) }]);
    expect(events(h.ended('a', { kind: 'cancelled' }, { exitCode: 143 }))).toEqual([
      ['a', 'cancelled', 'moved to another agent'],
      ['b', 'skipped', 'skipped: needs a, which was cancelled'],
    ]);
  });

  it('agent slice - cancel of a step waiting for its retry clears the timer and ends it at once', () => {
    const h = harness();
    h.assign([step('a', { retry: retry() })]);
    h.run('a', { kind: 'exited' }, { exitCode: 1 });
    const effects = h.cancel('a', 'gone');
    expect(effects[0]).toEqual({ type: 'clearTimer', runId: RUN, stepId: 'a' });
    expect(events(effects)).toEqual([['a', 'cancelled', 'gone']]);
    // Attempt 1 reported RETRYING, its end: the cancel is the step's, with no attempt (docs/protocol.md, rule attempt-zero).
    expect(attempts(effects)).toEqual([['a', 'cancelled', 0, '']]);
    expect(h.ledger.get(id('a', 1))?.ended).toBe('retried');
    expect(h.timer('a', 2)).toEqual([]);
  });

  it('agent slice - cancel of a step not started yet ends it at once', () => {
    const h = harness();
    h.assign([step('b', { needs: ['x'] })]);
    const effects = h.cancel('b', 'gone');
    expect(events(effects)).toEqual([['b', 'cancelled', 'gone']]);
    expect(attempts(effects)).toEqual([['b', 'cancelled', 0, '']]);
  });

  it('agent slice - cancel of the run stops what runs, cancels what waits, still runs finally steps, and is done once', () => {
    const h = harness();
    h.assign([step('a'), step('b', { needs: ['a'] }), step('f', { needs: ['b'], isFinally: true })]);
    h.started('a');
    const effects = h.cancel('', 'user asked');
    expect(effects).toEqual([{ type: 'log', level: 'info', fields: { run: RUN, reason: 'user asked' }, msg: 'cancelling run' }, { type: 'stop', attemptId: id('a', 1) }]);
    expect(h.cancel('', 'again')).toEqual([]);
    const end = h.ended('a', { kind: 'cancelled' });
    expect(events(end)).toEqual([
      ['a', 'cancelled', 'user asked'],
      ['b', 'cancelled', 'user asked'],
    ]);
    expect(starts(end)).toEqual([id('f', 1)]);
  });
});

describe('agent slice - finally and completion', () => {
  it('agent slice - a finally step runs whatever its needs ended with', () => {
    const h = harness();
    h.assign([step('a'), step('b', { needs: ['a'] }), step('f', { needs: ['a', 'b'], isFinally: true })]);
    const effects = h.run('a', { kind: 'exited' }, { exitCode: 1 });
    expect(phases(effects)).toEqual(['a:failed', 'b:skipped']);
    expect(starts(effects)).toEqual([id('f', 1)]);
  });

  it('agent slice - the slice is done once, when its last step is', () => {
    const h = harness();
    h.assign([step('a'), step('b')]);
    expect(of(h.run('a', { kind: 'succeeded' }), 'sliceDone')).toEqual([]);
    expect(of(h.run('b', { kind: 'succeeded' }), 'sliceDone')).toEqual([{ type: 'sliceDone', runId: RUN }]);
    expect(h.state.running).toBe(0);
  });

  it('agent slice - past MAX_FINISHED_SLICES the oldest finished slice is forgotten', () => {
    const h = harness();
    for (let i = 0; i <= MAX_FINISHED_SLICES; i++) h.send({ type: 'assigned', assignment: { runId: `r${i}`, workflow: 'wf', params: {}, startedMs: 0, steps: [], released: [] } });
    expect(h.state.slices.has('r0')).toBe(false);
    expect(h.state.slices.size).toBe(MAX_FINISHED_SLICES);
  });

  it('agent slice - RunFinished forgets a completed slice at once; one with a step still running stays', () => {
    const h = harness();
    h.assign([step('a')]);
    expect(h.send({ type: 'runFinished', runId: RUN })).toEqual([]);
    expect(h.state.slices.has(RUN)).toBe(true);
    h.run('a', { kind: 'succeeded' });
    expect(h.state.finished).toEqual([RUN]);
    h.send({ type: 'runFinished', runId: RUN });
    expect(h.state.slices.has(RUN)).toBe(false);
    expect(h.state.finished).toEqual([]);
  });
});

describe('agent slice - after a restart', () => {
  const table: { prior: PriorAttempt[]; detached?: boolean; then: string }[] = [
    { prior: [{ ended: 'succeeded', outputs: { k: 'v' } }], then: 'reported succeeded' },
    { prior: [{ ended: 'retried' }], then: `start ${id('a', 2)}` },
    { prior: [{ ended: 'retried' }, { ended: 'lost' }], then: 'retrying' },
    { prior: [{}], then: 'retrying' },
    { prior: [{}], detached: true, then: 'reattach' },
  ];
  it.each(table)('agent slice - ledger $prior (detached: $detached): $then', ({ prior, detached, then }) => {
    const h = harness();
    prior.forEach((p, i) => h.ledger.set(id('a', i + 1), p));
    if (detached) h.detached.add(id('a', prior.length));
    const effects = h.assign([step('a', { retry: retry() })]);
    if (then === 'reported succeeded') {
      expect(of(effects, 'record')).toEqual([]);
      // Its STARTED again first: it may have died with the last process (docs/protocol.md, rule event-order).
      expect(attempts(effects)).toEqual([['a', 'started', 1, id('a', 1)], ['a', 'succeeded', 1, id('a', 1)]]);
      expect(events(effects)[1]).toEqual(['a', 'succeeded', 'result recovered from the agent ledger after a restart']);
    } else if (then === 'retrying') {
      const n = prior.length;
      expect(attempts(effects)).toEqual([['a', 'started', n, id('a', n)], ['a', 'retrying', n, id('a', n)]]);
      expect(events(effects)[1]).toEqual(['a', 'retrying', `attempt ${n} of 3 ${LOST_MESSAGE}; retrying in 0.1s`]);
    } else if (then === 'reattach') {
      expect(phases(effects)).toEqual(['a:started']);
      expect(of(effects, 'reattach')).toMatchObject([{ attemptId: id('a', 1), attempt: 1 }]);
      expect(h.cancel('a')).toEqual([{ type: 'stop', attemptId: id('a', 1) }]);
    } else expect(starts(effects)).toEqual([then.slice(6)]);
  });
});

describe('agent wire', () => {
  it('agent wire - Assign, Release and Cancel come in as domain values', () => {
    const plan = { ...spec('a'), target: null, itemJson: '{"n":2}', retry: { attempts: 2, backoff: 'BACKOFF_EXPONENTIAL' as const, initialMs: 5, maxMs: 0, jitter: 0, retryOn: [] } };
    const a = assignIn({
      runId: RUN,
      workflow: 'wf',
      steps: [plan],
      params: {},
      paramsJson: '{"n":3,"s":"x"}',
      runStartedMs: 9,
      released: [
        { runId: RUN, stepId: 'x', status: 'DEP_STATUS_FAILED', outputs: {}, tolerated: true },
        { runId: RUN, stepId: 'y', status: 'DEP_STATUS_UNSPECIFIED', outputs: {}, tolerated: false },
      ],
      secrets: [{ stepId: 'a', name: 'tok', value: 'v', param: false }],
    });
    expect(a.params).toEqual({ n: 3n, s: 'x' });
    expect(a.steps[0].spec.retry?.backoff).toBe('exponential');
    expect(a.steps[0].spec.item).toEqual({ n: 2n });
    expect(a.steps[0].secrets).toEqual({ tok: 'v' });
    expect(a.released).toEqual([release('x', 'failed', { tolerated: true })]);
    expect(releaseIn({ runId: RUN, stepId: 'x', status: 'DEP_STATUS_SKIPPED', outputs: {}, tolerated: false })?.status).toBe('skipped');
    expect(cancelIn({ runId: RUN, stepId: '', reason: '' }).reason).toBe('cancelled');
  });

  it('agent wire - StepEvent and LogChunk go out with proto enum names, and a journaled stream reads back', () => {
    expect(stepEventOut(RUN, 'a', id('a', 1), 1, 'retrying', { message: 'm' }).stepEvent?.phase).toBe('STEP_PHASE_RETRYING');
    const log = logChunkOut(RUN, 'a', id('a', 1), 'stderr', Buffer.from('x'), 5).log!;
    expect([log.stream, 'offset' in log]).toEqual(['LOG_STREAM_STDERR', false]);
    expect([streamIn('LOG_STREAM_STDERR'), streamIn(2), streamIn('LOG_STREAM_STDOUT'), streamIn(undefined)]).toEqual(['stderr', 'stderr', 'stdout', 'stdout']);
  });
});
