import { describe, expect, it } from 'vitest';
import { compile } from '../../common/workflow/compiler/compile.js';
import type { RunRecord, StepPhase, StepReport } from '../../control-plane/model/run.js';
import { MAX_TIMER_MS } from '../../control-plane/scheduler/approvals.js';
import { place } from '../../common/workflow/placement/placement.js';
import { initialState, newRun, step, type Effect, type RunEvent, type RunsState } from '../../control-plane/scheduler/run-machine.js';
import { waitOf, type WaitingView } from '../../control-plane/scheduler/waiting.js';
import { fleetAgent } from '../helpers/fleet-agent.js';

const FLEET = [fleetAgent('edge-a', {})];
/** 2026-12-02 13:32 UTC: a 30 min gate times out 14:02 UTC. */
const T0 = Date.UTC(2026, 11, 2, 13, 32);

/** The run machine with a fake clock, as the service drives it: compiled, placed, written, admitted. */
function machine(state: RunsState = initialState({ lostAfterMs: 60_000, stepDeadlineSlackMs: 60_000 })) {
  let now = T0;
  const m = {
    state,
    get now() {
      return now;
    },
    tick: (ms: number) => void (now += ms),
    fire: (event: RunEvent): Effect[] => step(state, event, now).effects,
    submit(source: string, params: Record<string, string> = {}): { run: RunRecord; effects: Effect[] } {
      const { plan, problems } = compile({ source, params, fleet: FLEET, devices: [], secrets: [] });
      if (!plan) throw new Error(problems.map((p) => p.message).join('; '));
      const run = newRun('r-1', plan, place(plan.steps, FLEET), 0, false, now);
      m.fire({ type: 'submitting', run });
      return { run, effects: m.fire({ type: 'submitted', runId: run.id }) };
    },
    report(run: RunRecord, stepId: string, phase: StepPhase, extra: Partial<StepReport> = {}): Effect[] {
      const report: StepReport = { runId: run.id, stepId, attempt: 1, phase, exitCode: 0, startedAtMs: now, endedAtMs: now, cpuSeconds: 0, peakRssBytes: 0, outputs: {}, message: '', ...extra };
      return m.fire({ type: 'report', agent: run.steps[stepId].agent, run, report });
    },
    decide: (run: RunRecord, approve: boolean, by = 'alice', reason = '') => m.fire({ type: 'decide', runId: run.id, stepId: 'gate', approve, by, reason }),
  };
  return m;
}

const WF = (gate: string) => `name: deploy
params: { version: { type: string, default: "1.2" } }
steps:
  - { id: build, run: ./build }
  - id: gate
    needs: [build]
    approval: { approvers: [operator, alice], message: "Ship \${{ params.version }} as \${{ steps.build.outputs.image }}?", ${gate} }
  - { id: ship, needs: [gate], run: ./ship }
`;

const timers = (effects: Effect[]) => effects.flatMap((e) => (e.type === 'setApprovalTimer' ? [`set ${e.stepId} ${new Date(e.atMs).toISOString()}`] : e.type === 'clearApprovalTimer' ? [`clear ${e.stepId}`] : []));
const releases = (effects: Effect[]) => effects.flatMap((e) => (e.type === 'release' ? [`${e.agent}:${e.step.id}:${e.step.status}`] : []));
const history = (effects: Effect[]) => effects.flatMap((e) => (e.type === 'appendLog' ? e.records.map((r) => r.text) : []));
const view = (now: number): WaitingView => ({ now, lostAfterMs: 60_000, agent: () => ({ state: 'connected', draining: false, heardMs: now }), blockerOf: () => undefined });

/** A run whose gate has opened (build succeeded at T0). */
function opened(gate = 'timeout: 30m') {
  const m = machine();
  const { run, effects } = m.submit(WF(gate));
  // The gate is on no agent: only build and ship are sent, and the gate waits for build.
  expect(effects.flatMap((e) => (e.type === 'assign' ? e.order.steps.map((s) => s.id) : []))).toEqual(['build', 'ship']);
  expect(run.steps.gate.status).toBe('pending');
  m.report(run, 'build', 'started');
  const open = m.report(run, 'build', 'succeeded', { outputs: { image: 'app:1.2' } });
  return { m, run, open };
}

describe('approvals - run machine', () => {
  it('approvals - a gate opens when its needs succeed: running on no agent, message rendered, deadline set, history line, timer armed', () => {
    const { run, open } = opened();
    expect(run.steps.gate).toMatchObject({ status: 'running', agent: '', startedMs: T0 });
    expect(run.steps.gate.approval).toEqual({ message: 'Ship 1.2 as app:1.2?', deadlineMs: T0 + 1_800_000, decision: '', decidedBy: '', reason: '', decidedMs: 0 });
    expect(timers(open)).toEqual(['set gate 2026-12-02T14:02:00.000Z']);
    expect(history(open)).toEqual(['[drover] waiting for approval by operator or alice (times out 14:02 UTC): Ship 1.2 as app:1.2?\n']);
    expect(open.some((e) => e.type === 'persist' && e.steps?.some((s) => s.id === 'gate'))).toBe(true);
    // Nothing goes to an agent for the gate: build's release goes only to... nobody (ship is on edge-a with build).
    expect(releases(open)).toEqual([]);
    expect(waitOf(run, run.steps.gate, view(T0))).toEqual({ reason: 'waiting for approval by operator or alice (times out 14:02 UTC)', blocked: false });
  });

  it('approvals - approve: the gate succeeds with outputs approved/decidedBy/reason and its dependents are released', () => {
    const { m, run } = opened();
    m.tick(60_000);
    const fx = m.decide(run, true, 'alice', 'change window open');
    expect(run.steps.gate).toMatchObject({ status: 'succeeded', message: 'approved by alice: change window open', outputs: { approved: 'true', decidedBy: 'alice', reason: 'change window open' } });
    expect(run.steps.gate.approval).toMatchObject({ decision: 'approved', decidedBy: 'alice', reason: 'change window open', decidedMs: T0 + 60_000 });
    expect(releases(fx)).toEqual(['edge-a:gate:succeeded']);
    expect(timers(fx)).toEqual(['clear gate']);
    expect(history(fx)).toEqual(['[drover] approved by alice: change window open\n']);
    m.report(run, 'ship', 'started');
    m.report(run, 'ship', 'succeeded');
    expect(run.status).toBe('succeeded');
  });

  it('approvals - reject: the gate fails "rejected by NAME: reason", its dependents are skipped by their agent and the run fails', () => {
    const { m, run } = opened();
    const fx = m.decide(run, false, 'bob', 'not today');
    expect(run.steps.gate).toMatchObject({ status: 'failed', message: 'rejected by bob: not today', outputs: { approved: 'false', decidedBy: 'bob', reason: 'not today' } });
    expect(releases(fx)).toEqual(['edge-a:gate:failed']);
    m.report(run, 'ship', 'skipped', { attempt: 0, message: 'skipped: needs gate, which failed' });
    expect(run.status).toBe('failed');
    expect(run.message).toBe('step gate failed: rejected by bob: not today');
  });

  it('approvals - a second decision, or one for a step that is not an open gate, changes nothing', () => {
    const { m, run } = opened();
    m.decide(run, true);
    const again = m.decide(run, false, 'mallory');
    expect(run.steps.gate).toMatchObject({ status: 'succeeded', outputs: { decidedBy: 'alice' } });
    expect(again.filter((e) => e.type !== 'log')).toEqual([]);
  });

  it.each([
    ['fail', 'failed', 'no decision within 30m; the gate timed out (onTimeout: fail)', 'false'],
    ['approve', 'succeeded', 'approved: no decision within 30m (onTimeout: approve)', 'true'],
  ])('approvals - timeout with onTimeout %s: the gate %s', (onTimeout, status, message, approved) => {
    const { m, run } = opened(`timeout: 30m, onTimeout: ${onTimeout}`);
    m.tick(1_800_000);
    const fx = m.fire({ type: 'approvalTimeout', runId: run.id, stepId: 'gate' });
    expect(run.steps.gate).toMatchObject({ status, message, outputs: { approved, decidedBy: 'timeout', reason: '' } });
    expect(run.steps.gate.approval).toMatchObject({ decision: 'timed-out', decidedBy: 'timeout' });
    expect(releases(fx)).toEqual([`edge-a:gate:${status}`]);
  });

  it('approvals - a timer that fires early (a deadline past the longest timer) is set again; a gate without timeout sets none', () => {
    const long = opened('timeout: 40d');
    expect(timers(long.open)).toEqual([`set gate ${new Date(T0 + MAX_TIMER_MS).toISOString()}`]);
    long.m.tick(MAX_TIMER_MS);
    const fx = long.m.fire({ type: 'approvalTimeout', runId: long.run.id, stepId: 'gate' });
    expect(long.run.steps.gate.status).toBe('running');
    expect(timers(fx)).toEqual([`set gate ${new Date(T0 + 40 * 86_400_000).toISOString()}`]);
    expect(waitOf(long.run, long.run.steps.gate, view(long.m.now)).reason).toBe('waiting for approval by operator or alice (times out 2027-01-11 13:32 UTC)');
    const none = opened('onTimeout: fail');
    expect(timers(none.open)).toEqual([]);
    expect(none.run.steps.gate.approval!.deadlineMs).toBe(0);
  });

  it('approvals - cancelling the run closes an open gate and a gate not opened yet', () => {
    const { m, run } = opened();
    const fx = m.fire({ type: 'cancel', runId: run.id, reason: 'wrong version' });
    expect(run.steps.gate).toMatchObject({ status: 'cancelled', message: 'wrong version' });
    expect(timers(fx)).toEqual(['clear gate']);
    expect(history(fx)).toEqual(['[drover] gate closed: wrong version\n']);
    const m2 = machine();
    const { run: r2 } = m2.submit(WF('timeout: 30m'));
    m2.fire({ type: 'cancel', runId: r2.id, reason: 'nope' });
    expect(r2.steps.gate.status).toBe('cancelled');
    m2.report(r2, 'build', 'cancelled', { attempt: 0 });
    m2.report(r2, 'ship', 'cancelled', { attempt: 0 });
    expect(r2.status).toBe('cancelled');
  });

  it('approvals - a failed need skips the gate; a false when skips it; a gate with no needs opens at start', () => {
    const m = machine();
    const { run } = m.submit(WF('timeout: 30m'));
    m.report(run, 'build', 'failed', { exitCode: 1 });
    expect(run.steps.gate).toMatchObject({ status: 'skipped', message: 'skipped: needs build, which failed' });
    const m2 = machine();
    const { run: r2 } = m2.submit(`name: x\nparams: { env: { default: dev } }\nsteps:\n  - id: gate\n    when: "params.env == 'prod'"\n    approval: { approvers: [admin] }\n  - { id: after, needs: [gate], run: "true" }\n`);
    expect(r2.steps.gate).toMatchObject({ status: 'skipped', message: `skipped: condition "params.env == 'prod'" is false` });
    const m3 = machine();
    const { run: r3, effects } = m3.submit(`name: x\nsteps:\n  - { id: gate, approval: { approvers: [admin], message: "run \${{ run.workflow }}?" } }\n`);
    expect(r3.steps.gate).toMatchObject({ status: 'running', approval: { message: 'run x?' } });
    expect(history(effects)).toEqual(['[drover] waiting for approval by admin: run x?\n']);
  });

  it('approvals - after a restart an open gate keeps its deadline: re-armed as stored, and one that passed meanwhile times out at once', () => {
    const { run } = opened();
    // The stored record, read back by a new control plane an hour later.
    const stored: RunRecord = JSON.parse(JSON.stringify(run));
    const m = machine();
    m.tick(10 * 60_000);
    const fx = m.fire({ type: 'resume', runs: [stored] });
    expect(timers(fx)).toEqual(['set gate 2026-12-02T14:02:00.000Z']);
    expect(stored.steps.gate.approval!.deadlineMs).toBe(T0 + 1_800_000);
    m.tick(20 * 60_000);
    m.fire({ type: 'approvalTimeout', runId: stored.id, stepId: 'gate' });
    expect(stored.steps.gate.status).toBe('failed');
    // A deadline that passed while the control plane was down: its timer is set for a moment already past.
    const late: RunRecord = JSON.parse(JSON.stringify(run));
    const m2 = machine();
    m2.tick(3_600_000);
    const fx2 = m2.fire({ type: 'resume', runs: [late] });
    expect(timers(fx2)).toEqual(['set gate 2026-12-02T14:02:00.000Z']);
  });

  it('approvals - after a restart a gate whose needs ended before it could open opens', () => {
    const m = machine();
    const { run } = m.submit(WF('timeout: 30m'));
    const stored: RunRecord = JSON.parse(JSON.stringify(run));
    Object.assign(stored.steps.build, { status: 'succeeded', outputs: { image: 'app:9' } });
    const m2 = machine();
    m2.fire({ type: 'resume', runs: [stored] });
    expect(stored.steps.gate).toMatchObject({ status: 'running', approval: { message: 'Ship 1.2 as app:9?' } });
  });
});
