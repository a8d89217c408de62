import { describe, expect, it } from 'vitest';
import { compile } from '../../common/workflow/compiler/compile.js';
import type { RunRecord, StepPhase, StepReport } from '../../control-plane/model/run.js';
import type { FleetAgent } from '../../common/workflow/model/target.js';
import { capacityReason, clockTime, expiredMessage } from '../../control-plane/scheduler/capacity.js';
import { splitUnplaced } from '../../common/workflow/placement/place-run.js';
import { place } from '../../common/workflow/placement/placement.js';
import { admission, initialState, newRun, step, type Effect, type RunEvent, type RunsState } from '../../control-plane/scheduler/run-machine.js';
import { waitOf, type WaitingView } from '../../control-plane/scheduler/waiting.js';
import { fleetAgent } from '../helpers/fleet-agent.js';

const START = Date.parse('2026-12-02T13:52:00.000Z');

/** The run machine with a fleet that changes and a fake clock; runs are compiled and placed as Runs.submit does. */
function machine(fleet: FleetAgent[]) {
  let now = START;
  let ids = 0;
  const state: RunsState = initialState({ lostAfterMs: 60_000, stepDeadlineSlackMs: 60_000 });
  const m = {
    state,
    fleet,
    get now() {
      return now;
    },
    tick(ms: number) {
      now += ms;
      return m.fire({ type: 'sweep' });
    },
    fire(event: RunEvent): Effect[] {
      return step(state, event, now).effects;
    },
    /** Refused (the blockers' messages) or submitted. */
    submit(source: string): RunRecord {
      const { plan, problems } = compile({ source, params: {}, fleet: m.fleet, devices: [], secrets: [] });
      if (!plan) throw new Error(problems.map((p) => p.message).join('; '));
      const placement = place(plan.steps, m.fleet);
      const { blockers } = splitUnplaced(plan, placement, m.fleet);
      if (blockers.length) throw new Error(`refused: ${blockers.map((b) => b.message).join('; ')}`);
      const admit = admission(state, plan);
      const run = newRun(`r-${++ids}`, plan, placement, 0, admit.decision === 'queue', now);
      m.fire({ type: 'submitting', run });
      m.fire({ type: 'submitted', runId: run.id });
      return run;
    },
    /** An agent joins (Hello), as Runs.agentConnected tells the machine. */
    join(agent: FleetAgent): Effect[] {
      m.fleet = [...m.fleet.filter((a) => a.name !== agent.name), agent];
      return [...m.fire({ type: 'agentConnected', agent: agent.name, attempts: [] }), ...m.fire({ type: 'capacity', fleet: m.fleet })];
    },
    finish(run: RunRecord, stepId: string, phase: StepPhase): Effect[] {
      const from = run.steps[stepId].agent;
      const base: StepReport = { runId: run.id, stepId, attempt: 1, phase: 'started', exitCode: 0, startedAtMs: now, endedAtMs: 0, cpuSeconds: 0, peakRssBytes: 0, outputs: {}, message: '' };
      m.fire({ type: 'report', agent: from, run, report: base });
      return m.fire({ type: 'report', agent: from, run, report: { ...base, phase, exitCode: phase === 'failed' ? 1 : 0, endedAtMs: now } });
    },
  };
  return m;
}

const assigned = (effects: Effect[]) => effects.flatMap((e) => (e.type === 'assign' ? [`${e.order.agent}:${e.order.steps.map((s) => s.id).join(',')}`] : []));
const view = (now: number): WaitingView => ({ now, lostAfterMs: 60_000, agent: () => ({ state: 'connected', draining: false, heardMs: now }), blockerOf: () => undefined });

const DIR = fleetAgent('dir-1', { role: 'directory' });
const ASSETS = `name: onboard
steps:
  - { id: provision, target: { labels: { role: assets }, wait: 10m }, run: "true" }
`;
const CHAIN = `name: chain
steps:
  - { id: create, target: { labels: { role: directory } }, run: "true" }
  - { id: provision, needs: [create], target: { labels: { role: assets }, wait: 10m }, run: "true" }
  - { id: report, needs: [provision], target: { labels: { role: directory } }, run: "true" }
`;

describe('capacity - a step with target.wait and no usable agent', () => {
  it('capacity - without wait the run is refused; with wait it is accepted and the step waits, blocked, with its deadline', () => {
    const m = machine([DIR]);
    expect(() => m.submit(ASSETS.replace(', wait: 10m', ''))).toThrow(/^refused: no agent matches role=assets; labels in the fleet: role=directory$/);
    const run = m.submit(ASSETS);
    expect(run.status).toBe('running');
    expect(run.steps.provision).toMatchObject({ agent: '', status: 'pending', waitUntilMs: START + 600_000 });
    expect(waitOf(run, run.steps.provision, view(m.now))).toEqual({ reason: 'waiting for an agent matching role=assets (up to 10m, until 14:02 UTC)', blocked: true });
  });

  it('capacity - an agent that joins takes the waiting step (least loaded of those that match) and is sent it', () => {
    const m = machine([DIR]);
    const run = m.submit(ASSETS);
    expect(assigned(m.join(fleetAgent('web-1', { role: 'web' })))).toEqual([]);
    expect(run.steps.provision.agent).toBe('');
    m.fleet.push(fleetAgent('assets-busy', { role: 'assets' }, { runningSteps: 3, state: 'disconnected' }));
    const effects = m.join(fleetAgent('assets-1', { role: 'assets' }));
    expect(assigned(effects)).toEqual(['assets-1:provision']);
    expect(run.steps.provision.agent).toBe('assets-1');
    expect(waitOf(run, run.steps.provision, view(m.now)).reason).toBe('waiting for agent assets-1 to start it');
    m.finish(run, 'provision', 'succeeded');
    expect(run.status).toBe('succeeded');
  });

  it('capacity - onAgentLost retry with no other agent: the step waits again for a fresh wait, then moves to one that joins', () => {
    const m = machine([DIR]);
    const run = m.submit(`onAgentLost: retry\n${ASSETS}`);
    m.join(fleetAgent('assets-1', { role: 'assets' }));
    const started: StepReport = { runId: run.id, stepId: 'provision', attempt: 1, phase: 'started', exitCode: 0, startedAtMs: m.now, endedAtMs: 0, cpuSeconds: 0, peakRssBytes: 0, outputs: {}, message: '' };
    m.fire({ type: 'report', agent: 'assets-1', run, report: started });
    m.tick(120_000);
    m.fleet = m.fleet.filter((a) => a.name !== 'assets-1');
    m.fire({ type: 'agentLost', agent: 'assets-1', cause: 'no contact for 1m', fleet: m.fleet });
    expect(run.steps.provision).toMatchObject({ agent: '', status: 'pending', waitUntilMs: m.now + 600_000, previousAgents: ['assets-1'] });
    expect(run.steps.provision.message).toBe('agent assets-1 was lost (no contact for 1m); waiting for another');
    expect(run.steps.provision.attempts?.[0]).toMatchObject({ status: 'lost', agent: 'assets-1' });
    expect(waitOf(run, run.steps.provision, view(m.now)).reason).toMatch(/^waiting for an agent matching role=assets/);
    expect(assigned(m.join(fleetAgent('assets-2', { role: 'assets' })))).toEqual(['assets-2:provision']);
    m.finish(run, 'provision', 'succeeded');
    expect(run.status).toBe('succeeded');

    // Without wait the same loss fails the step, as before.
    const n = machine([DIR, fleetAgent('assets-1', { role: 'assets' })]);
    const plain = n.submit(`onAgentLost: retry\n${ASSETS.replace(', wait: 10m', '')}`);
    n.fleet = n.fleet.filter((a) => a.name !== 'assets-1');
    n.fire({ type: 'agentLost', agent: 'assets-1', cause: 'no contact for 1m', fleet: n.fleet });
    expect(plain.steps.provision).toMatchObject({ status: 'failed', message: 'agent assets-1 was lost (no contact for 1m); no other agent matches its target' });
  });

  it('capacity - the wait ends: the step fails with the message, its dependents are skipped and the run fails', () => {
    const m = machine([DIR]);
    const run = m.submit(CHAIN);
    m.tick(5 * 60_000);
    // Its clock starts when its needs are done, not at submit.
    expect(run.steps.provision.waitUntilMs).toBeUndefined();
    expect(waitOf(run, run.steps.provision, view(m.now)).reason).toBe('waiting for needs: create; then for an agent matching role=assets, none now (up to 10m)');
    m.finish(run, 'create', 'succeeded');
    expect(run.steps.provision.waitUntilMs).toBe(m.now + 600_000);
    m.tick(600_000 - 1000);
    expect(run.steps.provision.status).toBe('pending');
    m.tick(1000);
    expect(run.steps.provision).toMatchObject({ status: 'failed', message: 'no agent matching role=assets joined within 10m (target.wait)' });
    m.finish(run, 'report', 'skipped');
    expect(run.status).toBe('failed');
    expect(run.message).toBe('step provision failed: no agent matching role=assets joined within 10m (target.wait)');
  });

  it('capacity - continueOnError lets the run go on past a wait that ended; a need that failed skips the waiting step', () => {
    const m = machine([DIR]);
    const run = m.submit(CHAIN.replace('wait: 10m }', 'wait: 10m }, continueOnError: true'));
    m.finish(run, 'create', 'succeeded');
    m.tick(600_000);
    expect(run.steps.provision.status).toBe('failed');
    m.finish(run, 'report', 'succeeded');
    expect(run.status).toBe('succeeded');

    const other = m.submit(CHAIN);
    m.finish(other, 'create', 'failed');
    expect(other.steps.provision).toMatchObject({ status: 'skipped', message: 'skipped: needs create, which failed' });
  });

  it('capacity - every matching agent draining: the step waits; one that stops draining takes it', () => {
    const m = machine([DIR, fleetAgent('assets-1', { role: 'assets' }, { draining: true })]);
    const run = m.submit(ASSETS);
    expect(run.steps.provision.agent).toBe('');
    m.fleet = [DIR, fleetAgent('assets-1', { role: 'assets' })];
    expect(assigned(m.fire({ type: 'capacity', fleet: m.fleet }))).toEqual(['assets-1:provision']);
  });

  it('capacity - a waiting step placed before its need is done goes to its need\'s agent if it matches, ahead of a less loaded one', () => {
    const m = machine([fleetAgent('dir-2', { role: 'directory' })]);
    const run = m.submit(CHAIN.replace('labels: { role: assets }', 'labels: { assets: "yes" }'));
    expect(run.steps.create.agent).toBe('dir-2');
    m.fleet = [fleetAgent('assets-9', { assets: 'yes' })];
    const effects = m.join(fleetAgent('dir-2', { role: 'directory', assets: 'yes' }, { runningSteps: 5 }));
    expect(run.steps.provision.agent).toBe('dir-2');
    const order = effects.filter((e) => e.type === 'assign').at(-1);
    expect(order?.type === 'assign' && [order.order.agent, order.order.steps.map((s) => s.id).sort()]).toEqual(['dir-2', ['create', 'provision', 'report']]);
  });

  it('capacity - a need that finished before the step was placed rides along with its assignment as a release', () => {
    const m = machine([DIR]);
    const run = m.submit(CHAIN);
    m.finish(run, 'create', 'succeeded');
    const order = m.join(fleetAgent('assets-1', { role: 'assets' })).find((e) => e.type === 'assign');
    expect(order?.type === 'assign' && [order.order.agent, order.order.steps.map((s) => s.id), order.order.released.map((r) => r.step.id)]).toEqual(['assets-1', ['provision'], ['create']]);
    // provision's dependent on dir-1 hears of it when it ends, as for any step.
    const done = m.finish(run, 'provision', 'succeeded');
    expect(done.flatMap((e) => (e.type === 'release' ? [`${e.agent}:${e.step.id}`] : []))).toEqual(['dir-1:provision']);
  });

  it('capacity - cancel ends a waiting step at once; the run is cancelled', () => {
    const m = machine([DIR]);
    const run = m.submit(ASSETS);
    m.fire({ type: 'cancel', runId: run.id, reason: 'not needed' });
    expect(run.steps.provision).toMatchObject({ status: 'cancelled', message: 'not needed' });
    expect(run.status).toBe('cancelled');
  });

  it('capacity - after a restart the stored deadline holds: the step still expires then, or is placed when an agent joins', () => {
    const m = machine([DIR]);
    const run = m.submit(ASSETS);
    const stored: RunRecord = structuredClone(run);
    const expire = machine([DIR]);
    expire.fire({ type: 'resume', runs: [structuredClone(stored)] });
    expire.tick(599_000);
    const resumed = expire.state.active.get(run.id)!;
    expect(resumed.steps.provision).toMatchObject({ status: 'pending', waitUntilMs: START + 600_000 });
    expire.tick(1000);
    expect(resumed.steps.provision.status).toBe('failed');

    const join = machine([DIR]);
    join.fire({ type: 'resume', runs: [structuredClone(stored)] });
    join.tick(60_000);
    expect(assigned(join.join(fleetAgent('assets-1', { role: 'assets' })))).toEqual(['assets-1:provision']);
  });

  it('capacity - a queued run starts its wait when it starts, not when it was submitted', () => {
    const m = machine([DIR]);
    const doc = `name: q\nconcurrency: queue\nsteps:\n  - { id: a, target: { labels: { role: directory } }, run: "true" }\n  - { id: b, target: { labels: { role: assets }, wait: 1m }, run: "true" }\n`;
    const first = m.submit(doc);
    const second = m.submit(doc);
    expect(second.status).toBe('pending');
    m.tick(60_000);
    expect(first.steps.b.status).toBe('failed');
    m.finish(first, 'a', 'succeeded');
    expect(second.status).toBe('running');
    expect(second.steps.b.waitUntilMs).toBe(m.now + 60_000);
  });
});

describe('capacity - messages', () => {
  it('capacity - reasons and expiry name what the step waits for: labels, an agent by name, a proxy', () => {
    const { plan } = compile({ source: `name: m\nsteps:\n  - { id: a, target: { agent: web-7, wait: 90s }, run: "true" }\n`, params: {}, fleet: [], devices: [], secrets: [] });
    const unit = plan!.steps[0];
    const rec = newRun('r-1', plan!, place(plan!.steps, []), 0, false, START).steps.a;
    expect(capacityReason(unit, rec, START)).toBe('waiting for agent web-7 (up to 90s)');
    rec.waitUntilMs = START + 90_000;
    expect(capacityReason(unit, rec, START)).toBe('waiting for agent web-7 (up to 90s, until 13:53:30 UTC)');
    expect(expiredMessage(unit)).toBe('agent web-7 did not join within 90s (target.wait)');
    expect(clockTime(START + 86_400_000, START, 86_400_000)).toBe('2026-12-03 13:52 UTC');
  });

  it('capacity - drover plan: a waiting-capable step is a warning that says it waits, not a blocker; once, with its line', () => {
    const none = compile({ source: ASSETS, params: {}, fleet: [DIR], devices: [], secrets: [] });
    expect(none.problems.map((p) => [p.severity, p.path, p.line, p.message])).toEqual([
      ['warning', 'steps[0].target', 3, 'no agent in the fleet matches role=assets now; the run is accepted and the step waits up to 10m for one (target.wait)'],
    ]);
    expect(splitUnplaced(none.plan!, place(none.plan!.steps, [DIR]), [DIR])).toEqual({ blockers: [], waiting: [] });
    const draining = [DIR, fleetAgent('assets-1', { role: 'assets' }, { draining: true })];
    const { plan, problems } = compile({ source: ASSETS, params: {}, fleet: draining, devices: [], secrets: [] });
    expect(problems).toEqual([]);
    const split = splitUnplaced(plan!, place(plan!.steps, draining), draining);
    expect(split.blockers).toEqual([]);
    expect(split.waiting.map((w) => [w.severity, w.message])).toEqual([
      ['warning', 'every agent matching role=assets is draining; the run is accepted and the step waits up to 10m for one (target.wait)'],
    ]);
  });
});

describe('capacity - the language', () => {
  const problems = (source: string) => compile({ source, params: {}, fleet: [], devices: [], secrets: [], mode: 'validate' }).problems.filter((p) => p.severity === 'error');
  it('capacity - wait with strategy all is refused naming why; a bad duration is refused; wait: 0 is no wait', () => {
    const all = problems(`name: f\nsteps:\n  - { id: a, target: { labels: { r: x }, strategy: all, wait: 5m }, run: "true" }\n`);
    expect(all.map((p) => [p.path, p.message])).toEqual([
      [
        'steps[0].target.wait',
        'target.wait applies to steps that run on one agent (strategy one, or target.agent): a fan-out (strategy all) expands over the agents that match when the run is submitted, so there is no agent for it to wait for; drop wait, or use strategy one',
      ],
    ]);
    expect(problems(`name: f\nsteps:\n  - { id: a, target: { wait: soon }, run: "true" }\n`).map((p) => p.message).join()).toMatch(/not a duration/);
    const zero = compile({ source: `name: f\nsteps:\n  - { id: a, target: { wait: 0 }, run: "true" }\n`, params: {}, fleet: [], devices: [], secrets: [] });
    expect(zero.plan!.steps[0].target.waitMs).toBeUndefined();
  });

  it('capacity - a plan without wait hashes as before wait existed; with wait it hashes differently', () => {
    const c = (src: string) => compile({ source: src, params: {}, fleet: [DIR], devices: [], secrets: [] }).plan!.hash;
    expect(c(ASSETS)).not.toBe(c(ASSETS.replace(', wait: 10m', '')));
    expect(Object.keys(compile({ source: ASSETS.replace(', wait: 10m', ''), params: {}, fleet: [DIR], devices: [], secrets: [] }).plan!.steps[0].target)).not.toContain('waitMs');
  });
});
