import { describe, expect, it } from 'vitest';
import { compile } from '../../common/workflow/compiler/compile.js';
import type { RunRecord, StepPhase, StepReport } from '../../control-plane/model/run.js';
import type { FleetAgent } from '../../common/workflow/model/target.js';
import { place } from '../../common/workflow/placement/placement.js';
import { fleetAgent } from '../helpers/fleet-agent.js';
import { admission, initialState, newRun, step, type Effect, type RunEvent, type RunsState } from '../../control-plane/scheduler/run-machine.js';

const agent = (name: string) => fleetAgent(name, { pool: 'edge' });
const EDGE = [agent('edge-a'), agent('edge-b'), agent('edge-c')];

/**
 * The run machine driven by hand, with a fake clock: runs are compiled
 * and placed as the service does, events go in, effects are collected.
 */
function machine(fleet: FleetAgent[] = EDGE, config = { lostAfterMs: 60_000, stepDeadlineSlackMs: 60_000 }) {
  let now = 1_000_000;
  let ids = 0;
  const state: RunsState = initialState(config);
  const m = {
    state,
    effects: [] as Effect[],
    get now() {
      return now;
    },
    tick(ms: number) {
      now += ms;
    },
    fire(event: RunEvent): Effect[] {
      const { effects } = step(state, event, now);
      m.effects.push(...effects);
      return effects;
    },
    /** Compiles and submits a run: written, then admitted (queued or started). */
    submit(source: string): RunRecord | string {
      const { plan, problems } = compile({ source, params: {}, fleet, devices: [], secrets: [] });
      if (!plan) throw new Error(problems.map((p) => p.message).join('; '));
      const admit = admission(state, plan);
      if (admit.decision === 'skip') return `skipped behind ${admit.blocker.id}`;
      const run = newRun(`r-${++ids}`, plan, place(plan.steps, fleet), 0, admit.decision === 'queue', now);
      m.fire({ type: 'submitting', run });
      m.fire({ type: 'submitted', runId: run.id });
      return run;
    },
    report(run: RunRecord, stepId: string, phase: StepPhase, extra: Partial<StepReport> = {}, from = run.steps[stepId].agent): Effect[] {
      const report: StepReport = { runId: run.id, stepId, attempt: 1, phase, exitCode: phase === 'failed' ? 1 : 0, startedAtMs: phase === 'started' ? now : 0, endedAtMs: phase === 'started' ? 0 : now, cpuSeconds: 0, peakRssBytes: 0, outputs: {}, message: '', ...extra };
      return m.fire({ type: 'report', agent: from, run, report });
    },
    /** Started then ended with `phase`. */
    finish(run: RunRecord, stepId: string, phase: StepPhase, extra: Partial<StepReport> = {}) {
      m.report(run, stepId, 'started');
      return m.report(run, stepId, phase, extra);
    },
  };
  return m;
}

const sub = (m: ReturnType<typeof machine>, source: string) => {
  const r = m.submit(source);
  if (typeof r === 'string') throw new Error(r);
  return r;
};
const assigned = (effects: Effect[]) => effects.flatMap((e) => (e.type === 'assign' ? [`${e.order.agent}:${e.order.steps.map((s) => s.id).join(',')}`] : []));
const cancels = (effects: Effect[]) => effects.flatMap((e) => (e.type === 'cancel' ? [`${e.agent}:${e.stepId || '*'}`] : []));
const releases = (effects: Effect[]) => effects.flatMap((e) => (e.type === 'release' ? [`${e.agent}:${e.step.id}`] : []));
const statuses = (run: RunRecord) => Object.fromEntries(Object.values(run.steps).map((s) => [s.id, s.status]));

describe('run machine - dependencies and releases', () => {
  it('run machine - a new run sends each agent its slice; a need on another agent is released when it ends', () => {
    const m = machine();
    const run = sub(m, `name: chain\nsteps:\n  - { id: a, target: { agent: edge-a }, run: "true" }\n  - { id: b, needs: [a], target: { agent: edge-b }, run: "true" }\n  - { id: c, needs: [a], target: { agent: edge-a }, run: "true" }\n`);
    expect(assigned(m.effects)).toEqual(['edge-a:a,c', 'edge-b:b']);
    const done = m.finish(run, 'a', 'succeeded', { outputs: { v: '1' } });
    // c needs a on the same agent: satisfied there, no release; b's agent is told.
    expect(releases(done)).toEqual(['edge-b:a']);
    m.finish(run, 'b', 'succeeded');
    const end = m.finish(run, 'c', 'succeeded');
    expect(run.status).toBe('succeeded');
    expect(end.some((e) => e.type === 'ended')).toBe(true);
    expect(m.state.active.size).toBe(0);
  });

  it('run machine - a failed step fails the run unless continueOnError tolerates it, and its release says so', () => {
    const cases = [
      { tolerate: false, run: 'failed', tolerated: false },
      { tolerate: true, run: 'succeeded', tolerated: true },
    ];
    for (const c of cases) {
      const m = machine();
      const extra = c.tolerate ? ', continueOnError: true' : '';
      const run = sub(m, `name: t\nsteps:\n  - { id: a, target: { agent: edge-a }, run: "false"${extra} }\n  - { id: b, needs: [a], target: { agent: edge-b }, run: "true" }\n`);
      const effects = m.finish(run, 'a', 'failed');
      const rel = effects.find((e) => e.type === 'release');
      expect(rel && rel.type === 'release' && rel.tolerated, JSON.stringify(c)).toBe(c.tolerated);
      m.report(run, 'b', c.tolerate ? 'succeeded' : 'skipped');
      expect(run.status, JSON.stringify(c)).toBe(c.run);
      if (!c.tolerate) expect(run.message).toMatch(/^step a failed/);
    }
  });

  it('run machine - a slice sent again after a reconnect carries the finished remote needs as releases', () => {
    const m = machine();
    const run = sub(m, `name: re\nsteps:\n  - { id: a, target: { agent: edge-a }, run: "true" }\n  - { id: b, needs: [a], target: { agent: edge-b }, run: "true" }\n`);
    m.finish(run, 'a', 'succeeded');
    const again = m.fire({ type: 'agentConnected', agent: 'edge-b', attempts: [] });
    const order = again.find((e) => e.type === 'assign');
    expect(order?.type === 'assign' && order.order.released.map((r) => r.step.id)).toEqual(['a']);
  });
});

describe('run machine - fan-out groups', () => {
  const fanout = (maxParallel: number, maxFailures = 0) => `name: roll\nsteps:\n  - id: deploy\n    target: { labels: { pool: edge }, strategy: all, maxParallel: ${maxParallel}, maxFailures: ${maxFailures} }\n    run: "true"\n`;
  const ids = (run: RunRecord) => run.plan.groups[0].instances;

  it('run machine - maxParallel hands out one slot per finished instance, in declaration order', () => {
    const m = machine();
    const run = sub(m, fanout(1));
    const [a, b, c] = ids(run);
    expect(assigned(m.effects)).toEqual([`edge-a:${a}`]);
    expect([a, b, c].map((id) => run.steps[id].held)).toEqual([false, true, true]);
    expect(assigned(m.finish(run, a, 'succeeded'))).toEqual([`edge-b:${b}`]);
    expect(run.steps.deploy.status).toBe('running');
    expect(assigned(m.finish(run, b, 'succeeded'))).toEqual([`edge-c:${c}`]);
    m.finish(run, c, 'succeeded');
    expect(run.steps.deploy).toMatchObject({ status: 'succeeded', message: '3 succeeded' });
    expect(run.status).toBe('succeeded');
  });

  it('run machine - past maxFailures the rollout stops: held instances are skipped and the group fails', () => {
    const table = [
      { maxFailures: 0, outcomes: ['failed'], group: 'failed', message: '1 failed, 2 skipped (maxFailures 0)' },
      { maxFailures: 1, outcomes: ['failed', 'failed'], group: 'failed', message: '2 failed, 1 skipped (maxFailures 1)' },
      { maxFailures: 2, outcomes: ['failed', 'failed', 'succeeded'], group: 'succeeded', message: '2 failed, 1 succeeded' },
      { maxFailures: 0, outcomes: ['succeeded', 'succeeded', 'succeeded'], group: 'succeeded', message: '3 succeeded' },
    ] as const;
    for (const t of table) {
      const m = machine();
      const run = sub(m, fanout(1, t.maxFailures));
      // One instance runs at a time: each ends with the next outcome.
      for (const outcome of t.outcomes) {
        const next = ids(run).find((id) => !run.steps[id].held && run.steps[id].status === 'pending')!;
        m.finish(run, next, outcome);
      }
      expect(run.steps.deploy, JSON.stringify(t)).toMatchObject({ status: t.group, message: t.message });
      expect(run.status).toBe(t.group);
    }
  });

  it('run machine - an empty fan-out succeeds at once with "no items"', () => {
    const m = machine();
    const run = sub(m, `name: none\nparams:\n  users: { type: list, default: [] }\nsteps:\n  - id: each\n    forEach: \${{ params.users }}\n    env: { ITEM: "\${{ item }}" }\n    run: echo "$ITEM"\n`);
    expect(run.steps.each).toMatchObject({ status: 'succeeded', message: 'no items' });
    expect(run.status).toBe('succeeded');
  });
});

describe('run machine - concurrency, deadlines, cancel', () => {
  it('run machine - concurrency: queue waits for the active run; skip refuses; allow starts', () => {
    const m = machine();
    const doc = (c: string) => `name: once\nconcurrency: ${c}\nsteps:\n  - { id: s, target: { agent: edge-a }, run: "true" }\n`;
    const first = sub(m, doc('queue'));
    const second = sub(m, doc('queue'));
    expect(second).toMatchObject({ status: 'pending', message: 'queued behind an active run (concurrency: queue)' });
    expect(m.submit(doc('skip'))).toBe(`skipped behind ${first.id}`);
    m.effects.length = 0;
    m.finish(first, 's', 'succeeded');
    expect(second.status).toBe('running');
    expect(assigned(m.effects)).toEqual(['edge-a:s']);
    const other = machine();
    sub(other, doc('allow'));
    expect(sub(other, doc('allow')).status).toBe('running');
  });

  it('run machine - a deadline arms a timer at start; when it fires the steps are cancelled and the run fails', () => {
    const m = machine();
    const run = sub(m, `name: dl\ndeadline: 1s\nsteps:\n  - { id: long, target: { agent: edge-a }, run: "sleep 30" }\n`);
    expect(m.effects.find((e) => e.type === 'setTimer')).toEqual({ type: 'setTimer', runId: run.id, atMs: m.now + 1000 });
    m.report(run, 'long', 'started');
    m.tick(1000);
    const fired = m.fire({ type: 'deadline', runId: run.id });
    expect(cancels(fired)).toEqual(['edge-a:*']);
    expect(run.deadlineExceeded).toBe(true);
    m.report(run, 'long', 'cancelled');
    expect(run).toMatchObject({ status: 'failed', message: 'deadline of 1s exceeded' });
    // A late timer of an ended run changes nothing.
    expect(m.fire({ type: 'deadline', runId: run.id })).toEqual([]);
  });

  it('run machine - cancel: held instances end at once, an unreachable agent\'s steps end when the cancel is undelivered', () => {
    const m = machine();
    const run = sub(m, `name: c\nsteps:\n  - id: fan\n    target: { labels: { pool: edge }, strategy: all, maxParallel: 1 }\n    run: "sleep 9"\n`);
    const [a, b, c] = run.plan.groups[0].instances;
    m.report(run, a, 'started');
    const effects = m.fire({ type: 'cancel', runId: run.id, reason: 'stop' });
    expect([b, c].map((id) => run.steps[id].status)).toEqual(['cancelled', 'cancelled']);
    const cancel = effects.find((e) => e.type === 'cancel');
    expect(cancel).toMatchObject({ agent: 'edge-a', stepId: '', reportUndelivered: true });
    expect(run.status).toBe('running');
    m.fire({ type: 'undelivered', runId: run.id, agent: 'edge-a' });
    expect(run.steps[a]).toMatchObject({ status: 'cancelled', message: 'cancelled while agent edge-a was unreachable' });
    expect(run.status).toBe('cancelled');
    expect(run.steps.fan.status).toBe('cancelled');
  });
});

describe('run machine - agents lost and returning', () => {
  const lone = (policy: string, target = '{ labels: { pool: edge } }') => `name: lost\nonAgentLost: ${policy}\nsteps:\n  - { id: work, target: ${target}, run: "sleep 9" }\n`;

  it('run machine - onAgentLost: wait keeps the step, fail fails it, retry moves it to another matching agent', () => {
    const table = [
      { policy: 'wait', status: 'running', agent: 'edge-a', message: '' },
      { policy: 'fail', status: 'failed', agent: 'edge-a', message: 'agent edge-a was lost (no contact for 1m)' },
      { policy: 'retry', status: 'pending', agent: 'edge-b', message: 'moved from edge-a (lost) to edge-b' },
    ];
    for (const t of table) {
      const m = machine();
      const run = sub(m, lone(t.policy));
      expect(run.steps.work.agent).toBe('edge-a');
      m.report(run, 'work', 'started');
      const effects = m.fire({ type: 'agentLost', agent: 'edge-a', cause: 'no contact for 1m', fleet: EDGE });
      expect(run.steps.work, t.policy).toMatchObject({ status: t.status, agent: t.agent });
      if (t.message) expect(run.steps.work.message).toBe(t.message);
      if (t.policy === 'retry') {
        expect(assigned(effects)).toEqual(['edge-b:work']);
        expect(run.steps.work.attempts?.[0]).toMatchObject({ status: 'lost', superseded: 'the agent was declared lost' });
      }
    }
  });

  it('run machine - retry with no other matching agent fails the step; a fan-out instance stays with its agent', () => {
    const m = machine();
    const run = sub(m, lone('retry', '{ agent: edge-a }'));
    m.report(run, 'work', 'started');
    m.fire({ type: 'agentLost', agent: 'edge-a', cause: 'silent', fleet: EDGE });
    expect(run.steps.work).toMatchObject({ status: 'failed', message: 'agent edge-a was lost (silent); no other agent matches its target' });

    const f = machine();
    const fan = sub(f, `name: fan\nonAgentLost: retry\nsteps:\n  - { id: all, target: { labels: { pool: edge }, strategy: all }, run: "true" }\n`);
    const onA = fan.plan.groups[0].instances.find((id) => fan.steps[id].agent === 'edge-a')!;
    f.fire({ type: 'agentLost', agent: 'edge-a', cause: 'silent', fleet: EDGE });
    expect(fan.steps[onA]).toMatchObject({ status: 'failed', agent: 'edge-a' });
  });

  it('run machine - a returning agent gets its slice again and is told to stop what moved away or ended', () => {
    const m = machine();
    const run = sub(m, lone('retry'));
    m.report(run, 'work', 'started');
    m.fire({ type: 'agentLost', agent: 'edge-a', cause: 'silent', fleet: EDGE });
    const back = m.fire({ type: 'agentConnected', agent: 'edge-a', attempts: [{ id: `${run.id}/work/1/edge-a`, run }, { id: 'r-gone/x/1/edge-a', run: undefined }] });
    expect(cancels(back)).toEqual(['edge-a:work', 'edge-a:work', 'edge-a:x']);
    expect(back.filter((e) => e.type === 'cancel').map((e) => e.type === 'cancel' && e.reason)).toEqual([
      'moved to edge-b while edge-a was lost',
      'stopped by the control plane: it now runs on edge-b',
      'stopped by the control plane: the run is unknown',
    ]);
    // Its late success is history only: the step follows edge-b.
    m.report(run, 'work', 'succeeded', {}, 'edge-a');
    expect(run.steps.work).toMatchObject({ status: 'pending', agent: 'edge-b' });
    expect(run.steps.work.attempts?.[0]).toMatchObject({ status: 'succeeded', note: 'completed on edge-a after the agent was declared lost' });
  });

  it("run machine - a report from an agent that never had the step is ignored and logged against that agent", () => {
    const m = machine();
    const run = sub(m, lone('wait'));
    const effects = m.report(run, 'work', 'succeeded', {}, 'edge-c');
    expect(run.steps.work.status).toBe('pending');
    expect(effects).toEqual([{ type: 'log', level: 'warn', fields: { agent: 'edge-c', owner: 'edge-a', run: run.id, step: 'work' }, msg: "agent reported another agent's step; ignored", peer: 'edge-c' }]);
  });

  it('run machine - the step-deadline backstop fails a step silent past its timeout plus the slack, and not before', () => {
    const m = machine(EDGE, { lostAfterMs: 60_000, stepDeadlineSlackMs: 1000 });
    const run = sub(m, `name: bs\nonAgentLost: wait\nsteps:\n  - { id: t, target: { agent: edge-a }, timeout: 500ms, run: "sleep 30" }\n`);
    m.report(run, 't', 'started');
    m.tick(1499);
    expect(m.fire({ type: 'sweep' })).toEqual([]);
    m.tick(1);
    const effects = m.fire({ type: 'sweep' });
    expect(cancels(effects)).toEqual(['edge-a:t']);
    expect(run.steps.t.message).toBe("no result from agent edge-a within the step's timeout (0.5s) plus 1s; the agent stopped reporting");
    expect(run.status).toBe('failed');
  });
});

describe('run machine - determinism', () => {
  it('run machine - the same events from the same state give the same effects and records', () => {
    const play = () => {
      const m = machine();
      const run = sub(m, `name: d\nsteps:\n  - id: fan\n    target: { labels: { pool: edge }, strategy: all, maxParallel: 2 }\n    run: "true"\n  - { id: after, needs: [fan], target: { agent: edge-c }, run: "true" }\n`);
      for (const id of run.plan.groups[0].instances) {
        m.tick(10);
        m.finish(run, id, 'succeeded');
      }
      m.finish(run, 'after', 'succeeded');
      return JSON.stringify({ effects: m.effects.map((e) => ({ ...e, run: undefined, order: undefined, change: undefined })), run });
    };
    expect(play()).toBe(play());
    expect(JSON.parse(play()).run.status).toBe('succeeded');
    expect(statuses(JSON.parse(play()).run)).toMatchObject({ after: 'succeeded', fan: 'succeeded' });
  });
});
