import { describe, expect, it } from 'vitest';
import { compile } from '../../common/workflow/compiler/compile.js';
import { ApiError } from '../../control-plane/errors.js';
import type { RunRecord, StepStatus } from '../../control-plane/model/run.js';
import type { FleetAgent } from '../../common/workflow/model/target.js';
import { rerun, type RerunHost } from '../../control-plane/rerun.js';
import { place } from '../../common/workflow/placement/placement.js';
import { rerunRecord, reusedSteps, type RerunMode } from '../../control-plane/scheduler/rerun.js';
import { initialState, newRun, step, type Effect } from '../../control-plane/scheduler/run-machine.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import { fleetAgent } from '../helpers/fleet-agent.js';

const FLEET = ['edge-a', 'edge-b', 'edge-c'].map((n) => fleetAgent(n, { pool: 'edge' }));

/** A finished run of `source` whose steps ended as `ended` says (the rest succeeded), with outputs `out_<id>=<id>`. */
function finished(source: string, ended: Record<string, StepStatus> = {}, fleet: FleetAgent[] = FLEET, id = 'r-old'): RunRecord {
  const { plan, problems } = compile({ source, params: {}, fleet, devices: [], secrets: [] });
  if (!plan) throw new Error(problems.map((p) => p.message).join('; '));
  const run = newRun(id, plan, place(plan.steps, fleet), 3, false, 1_000);
  for (const s of Object.values(run.steps)) {
    s.status = ended[s.id] ?? 'succeeded';
    s.attempt = 1;
    s.startedMs = 1_000;
    s.endedMs = 2_000;
    s.cpuSeconds = 0.5;
    s.outputs = s.kind === 'group' ? {} : { [`out_${s.id}`]: s.id };
    s.attempts = [{ n: 1, id: `${id}/${s.id}/1/${s.agent}`, agent: s.agent, attempt: 1, status: 'succeeded', exitCode: 0, startedMs: 1_000, endedMs: 2_000, message: '', superseded: '', note: '' }];
  }
  run.status = Object.values(run.steps).some((s) => s.status !== 'succeeded') ? 'failed' : 'succeeded';
  run.endedMs = 2_000;
  return run;
}

const CHAIN = `name: chain
steps:
  - { id: a, target: { agent: edge-a }, run: "true" }
  - { id: b, needs: [a], target: { agent: edge-b }, run: "true" }
  - { id: c, needs: [b], target: { agent: edge-a }, run: "true" }
  - { id: side, target: { agent: edge-c }, run: "true" }
finally:
  - { id: notify, target: { agent: edge-c }, run: "true" }
`;

const FAN = `name: fan
steps:
  - { id: prep, target: { agent: edge-a }, run: "true" }
  - { id: deploy, needs: [prep], target: { labels: { pool: edge }, strategy: all, maxParallel: 1 }, run: "true" }
  - { id: verify, needs: [deploy], target: { agent: edge-b }, run: "true" }
`;

const sorted = (s: Set<string>) => [...s].sort();

describe('rerun - which steps are reused', () => {
  const cases: { name: string; source: string; ended?: Record<string, StepStatus>; mode: RerunMode; reused: string[] }[] = [
    { name: 'no mode: nothing is reused', source: CHAIN, mode: { kind: 'all' }, reused: [] },
    { name: '--from the 2nd: the 1st and an unrelated step are reused, finally never', source: CHAIN, mode: { kind: 'from', step: 'b' }, reused: ['a', 'side'] },
    { name: '--from the 1st: only the unrelated step', source: CHAIN, mode: { kind: 'from', step: 'a' }, reused: ['side'] },
    { name: '--from skips a step that failed before it: it runs again, and so does what needs it', source: CHAIN, ended: { a: 'failed', b: 'skipped', c: 'skipped' }, mode: { kind: 'from', step: 'c' }, reused: ['side'] },
    { name: '--failed-only: what failed and what depends on it run again', source: CHAIN, ended: { b: 'failed', c: 'skipped' }, mode: { kind: 'failed' }, reused: ['a', 'side'] },
    { name: '--failed-only: a cancelled step runs again', source: CHAIN, ended: { side: 'cancelled' }, mode: { kind: 'failed' }, reused: ['a', 'b', 'c'] },
    {
      name: '--failed-only after an approved gate: the gate asks again, and what needs it runs again',
      source: `name: gated\nsteps:\n  - { id: build, target: { agent: edge-a }, run: "true" }\n  - { id: ok, needs: [build], approval: { approvers: [operator] } }\n  - { id: deploy, needs: [ok], target: { agent: edge-b }, run: "true" }\n`,
      ended: { deploy: 'failed' },
      mode: { kind: 'failed' },
      reused: ['build'],
    },
    {
      name: '--failed-only on a fan-out: the succeeded instances are reused, the failed one and what follows the group run',
      source: FAN,
      ended: { 'deploy[edge-b]': 'failed', deploy: 'failed', verify: 'skipped' },
      mode: { kind: 'failed' },
      reused: ['deploy[edge-a]', 'deploy[edge-c]', 'prep'],
    },
    { name: '--from one instance: its siblings are reused, the group and what follows it run', source: FAN, mode: { kind: 'from', step: 'deploy[edge-c]' }, reused: ['deploy[edge-a]', 'deploy[edge-b]', 'prep'] },
    { name: '--from the group: every instance runs', source: FAN, mode: { kind: 'from', step: 'deploy' }, reused: ['prep'] },
    { name: '--from after the group: the group and its instances are reused', source: FAN, mode: { kind: 'from', step: 'verify' }, reused: ['deploy', 'deploy[edge-a]', 'deploy[edge-b]', 'deploy[edge-c]', 'prep'] },
    {
      name: 'a group that failed with every instance succeeded (a need was tolerated) runs all of them again: it settles only through one',
      source: FAN,
      ended: { deploy: 'failed', verify: 'skipped' },
      mode: { kind: 'failed' },
      reused: ['prep'],
    },
  ];
  for (const c of cases) {
    it(`rerun - ${c.name}`, () => {
      expect(sorted(reusedSteps(finished(c.source, c.ended), c.mode))).toEqual(c.reused);
    });
  }

  it('rerun - a step that succeeded after a tolerated failure runs again with it (--failed-only)', () => {
    const src = `name: t\nsteps:\n  - { id: a, target: { agent: edge-a }, run: "false", continueOnError: true }\n  - { id: b, needs: [a], target: { agent: edge-b }, run: "true" }\n  - { id: z, target: { agent: edge-b }, run: "true" }\n`;
    expect(sorted(reusedSteps(finished(src, { a: 'failed' }), { kind: 'failed' }))).toEqual(['z']);
  });
});

/** The machine driven by hand for one re-run record (as runs.ts does after it is written). */
function startRerun(old: RunRecord, mode: RerunMode, fleet = FLEET) {
  const reused = reusedSteps(old, mode);
  const toRun = old.plan.steps.filter((s) => !reused.has(s.id));
  const run = rerunRecord('r-new', old, reused, place(toRun, fleet), false, 5_000);
  const state = initialState({ lostAfterMs: 60_000, stepDeadlineSlackMs: 60_000 });
  const effects: Effect[] = [];
  effects.push(...step(state, { type: 'submitting', run }, 5_000).effects);
  effects.push(...step(state, { type: 'submitted', runId: run.id }, 5_000).effects);
  const report = (stepId: string, phase: 'started' | 'succeeded' | 'failed') =>
    step(state, { type: 'report', agent: run.steps[stepId].agent, run, report: { runId: run.id, stepId, attempt: 1, phase, exitCode: phase === 'failed' ? 1 : 0, startedAtMs: 5_000, endedAtMs: phase === 'started' ? 0 : 6_000, cpuSeconds: 0, peakRssBytes: 0, outputs: {}, message: '' } }, 6_000).effects;
  return { run, effects, report };
}

const assigns = (effects: Effect[]) =>
  effects.flatMap((e) => (e.type === 'assign' ? [`${e.order.agent}:${e.order.steps.map((s) => s.id).join(',')}${e.order.released.length ? ` +${e.order.released.map((r) => `${r.step.id}(${JSON.stringify(r.step.outputs)})`).join(',')}` : ''}`] : []));

describe('rerun - the new run', () => {
  it('rerun - the record: same plan, params, hash and version, new id, trigger rerun, reused steps copied with their outputs', () => {
    const old = finished(CHAIN, { b: 'failed', c: 'skipped' });
    const { run } = startRerun(old, { kind: 'from', step: 'b' });
    expect(run).toMatchObject({ id: 'r-new', workflow: 'chain', workflowVersion: 3, rerunOf: 'r-old', trigger: 'rerun', params: old.params, status: 'running', createdMs: 5_000 });
    expect(run.plan).toEqual(old.plan);
    expect(run.plan).not.toBe(old.plan);
    expect(run.steps.a).toMatchObject({ status: 'succeeded', outputs: { out_a: 'a' }, reusedFrom: 'r-old', agent: 'edge-a', cpuSeconds: 0, attempts: [] });
    expect(run.steps.b).toMatchObject({ status: 'pending', attempt: 0, outputs: {} });
    expect(run.steps.b.reusedFrom).toBeUndefined();
    // The old record is untouched.
    expect(old.steps.a.attempts).toHaveLength(1);
    expect(old.steps.a.cpuSeconds).toBe(0.5);
  });

  it('rerun - reused steps are never sent to an agent; their dependents get their outputs with their slice', () => {
    const { effects } = startRerun(finished(CHAIN), { kind: 'from', step: 'b' });
    expect(assigns(effects)).toEqual(['edge-a:c', 'edge-b:b +a({"out_a":"a"})', 'edge-c:notify +a({"out_a":"a"}),side({"out_side":"side"})']);
  });

  it('rerun - --failed-only on a fan-out sends only the failed instance, to its agent, and the run succeeds when it does', () => {
    const old = finished(FAN, { 'deploy[edge-b]': 'failed', deploy: 'failed', verify: 'skipped' });
    const { run, effects, report } = startRerun(old, { kind: 'failed' });
    // maxParallel 1 counts only the instances that run: the one failed instance is not held.
    expect(assigns(effects)).toEqual(['edge-b:deploy[edge-b],verify +prep({"out_prep":"prep"})']);
    report('deploy[edge-b]', 'started');
    report('deploy[edge-b]', 'succeeded');
    expect(run.steps.deploy.status).toBe('succeeded');
    expect(run.steps.deploy.message).toBe('3 succeeded');
    report('verify', 'started');
    report('verify', 'succeeded');
    expect(run.status).toBe('succeeded');
  });

  it('rerun - maxParallel holds instances past the limit among those that run again', () => {
    const old = finished(FAN, { 'deploy[edge-a]': 'failed', 'deploy[edge-c]': 'failed', deploy: 'failed', verify: 'skipped' });
    const { run } = startRerun(old, { kind: 'failed' });
    expect([run.steps['deploy[edge-a]'].held, run.steps['deploy[edge-b]'].held, run.steps['deploy[edge-c]'].held]).toEqual([false, false, true]);
  });
});

/** The service's checks, over a real in-memory store and the machine's state. */
function host(runs: RunRecord[], fleet = FLEET): RerunHost & { started: RunRecord[] } {
  const store = new MemoryStore();
  for (const r of runs) store.putRun(r);
  const started: RunRecord[] = [];
  let n = 0;
  return {
    started,
    state: initialState({ lostAfterMs: 60_000, stepDeadlineSlackMs: 60_000 }),
    get: (id) => {
      const r = store.getRun(id);
      if (!r) throw new ApiError('RUN_NOT_FOUND', `no run with id "${id}"`);
      return r;
    },
    fleet: () => fleet,
    newId: () => `r-new-${++n}`,
    now: () => 9_000,
    start: async (run) => {
      store.putRun(run);
      started.push(run);
      return run;
    },
  };
}

async function refused(p: Promise<unknown>): Promise<ApiError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

describe('rerun - refusals', () => {
  it('rerun - an active run is refused with RUN_NOT_FINISHED: wait or cancel it', async () => {
    const old = finished(CHAIN);
    old.status = 'running';
    const err = await refused(rerun(host([old]), 'r-old', {}));
    expect(err.code).toBe('RUN_NOT_FINISHED');
    expect(err.message).toBe('run r-old is still running; only a finished run can be re-run');
    expect(err.hint).toMatch(/wait for it .* or cancel it \(drover cancel r-old\)/);
  });

  it('rerun - an unknown --from step is STEP_NOT_FOUND with the closest id; --from with --failed-only is INVALID_INPUT', async () => {
    const h = host([finished(CHAIN)]);
    const err = await refused(rerun(h, 'r-old', { fromStep: 'sid' }));
    expect(err.code).toBe('STEP_NOT_FOUND');
    expect(err.message).toBe('run r-old has no step "sid" (did you mean "side"?)');
    expect(err.hint).toBe('its steps: a, b, c, side, notify');
    const both = await refused(rerun(h, 'r-old', { fromStep: 'b', failedOnly: true }));
    expect(both.code).toBe('INVALID_INPUT');
    expect(both.message).toMatch(/^--from and --failed-only do not go together/);
    expect(h.started).toEqual([]);
  });

  it('rerun - a step that would run again with a secret param is NOT_RERUNNABLE; --from after it is fine', async () => {
    const src = `name: s\nparams: { token: { secret: true } }\nsteps:\n  - { id: login, target: { agent: edge-a }, env: { T: "\${{ params.token }}" }, run: "true" }\n  - { id: work, needs: [login], target: { agent: edge-a }, run: "true" }\n`;
    const { plan, problems } = compile({ source: src, params: { token: 'x' }, fleet: FLEET, devices: [], secrets: [] });
    if (!plan) throw new Error(problems.map((p) => p.message).join('; '));
    const old = newRun('r-old', plan, place(plan.steps, FLEET), 0, false, 1_000);
    for (const s of Object.values(old.steps)) s.status = 'succeeded';
    old.status = 'succeeded';
    const h = host([old]);
    const err = await refused(rerun(h, 'r-old', {}));
    expect(err.code).toBe('NOT_RERUNNABLE');
    expect(err.message).toBe('step login of run r-old uses the secret param token, whose value is not kept after a run ends');
    expect(err.hint).toMatch(/^launch the workflow anew with -p \(or --param-file\) token=\.\.\./);
    const ok = await rerun(h, 'r-old', { fromStep: 'work' });
    expect(Object.values(ok.run.steps).filter((s) => s.reusedFrom).map((s) => s.id)).toEqual(['login']);
  });

  it('rerun - --failed-only of a run where nothing failed is NOT_RERUNNABLE', async () => {
    const err = await refused(rerun(host([finished(CHAIN)]), 'r-old', { failedOnly: true }));
    expect(err.code).toBe('NOT_RERUNNABLE');
    expect(err.message).toBe('run r-old succeeded with no step that failed, so --failed-only has nothing to run again');
  });

  it('rerun - a failed fan-out instance whose agent is gone or draining is NO_MATCHING_AGENT', async () => {
    const old = finished(FAN, { 'deploy[edge-b]': 'failed', deploy: 'failed', verify: 'skipped' });
    const gone = await refused(rerun(host([old], FLEET.filter((a) => a.name !== 'edge-b').concat(fleetAgent('edge-x', { pool: 'other' }))), 'r-old', { failedOnly: true }));
    expect(gone.code).toBe('NO_MATCHING_AGENT');
    expect(gone.message).toMatch(/step "deploy\[edge-b\]": agent edge-b, which this fan-out instance runs on, is no longer in the fleet/);
    const draining = await refused(rerun(host([old], FLEET.map((a) => (a.name === 'edge-b' ? { ...a, draining: true } : a))), 'r-old', { failedOnly: true }));
    expect(draining.message).toMatch(/agent edge-b, which this fan-out instance runs on, is draining/);
  });

  it('rerun - the new run carries the idempotency key it was asked with (Runs.rerun checks and records keys: launch-keys.ts)', async () => {
    const h = host([finished(CHAIN, { b: 'failed', c: 'skipped' })]);
    const first = await rerun(h, 'r-old', { failedOnly: true, idempotencyKey: 'retry-1' });
    expect(first).toMatchObject({ deduplicated: false, run: { idempotencyKey: 'retry-1', rerunOf: 'r-old' } });
    expect((await rerun(h, 'r-old', { failedOnly: true })).run.idempotencyKey).toBeUndefined();
  });
});
