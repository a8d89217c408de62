import { describe, expect, it } from 'vitest';
import { compile } from '../../common/workflow/compiler/compile.js';
import type { RunRecord } from '../../control-plane/model/run.js';
import type { FleetAgent } from '../../common/workflow/model/target.js';
import { place } from '../../common/workflow/placement/placement.js';
import { newRun } from '../../control-plane/scheduler/run-machine.js';
import { roughDuration, waitingReason, waitOf, type WaitingView } from '../../control-plane/scheduler/waiting.js';
import { fleetAgent } from '../helpers/fleet-agent.js';

const NOW = 10_000_000;
const FLEET: FleetAgent[] = [fleetAgent('dir-1', { role: 'directory' }), fleetAgent('assets-1', { role: 'assets' }), fleetAgent('edge-a', { pool: 'edge' }), fleetAgent('edge-b', { pool: 'edge' }), fleetAgent('edge-c', { pool: 'edge' })];

function runOf(source: string, opts: { queued?: boolean; id?: string } = {}): RunRecord {
  const { plan, problems } = compile({ source, params: {}, fleet: FLEET, devices: [], secrets: [] });
  if (!plan) throw new Error(problems.map((p) => p.message).join('; '));
  return newRun(opts.id ?? 'r-1', plan, place(plan.steps, FLEET), 0, !!opts.queued, NOW - 5000);
}

type AgentView = ReturnType<WaitingView['agent']>;
function view(agents: Record<string, AgentView> = {}, blocker?: RunRecord): WaitingView {
  return {
    now: NOW,
    lostAfterMs: 60_000,
    agent: (name) => (name in agents ? agents[name] : { state: 'connected', draining: false, heardMs: NOW - 1000 }),
    blockerOf: () => blocker,
  };
}

const TWO = `name: two
onAgentLost: wait
steps:
  - { id: create-account, target: { labels: { role: directory } }, run: "true" }
  - { id: provision-laptop, needs: [create-account], target: { labels: { role: assets } }, run: "true" }
finally:
  - { id: notify, target: { labels: { role: directory } }, run: "true" }
`;

describe('waiting - why an unfinished step does not move', () => {
  it('waiting - a step whose needs have not finished names them', () => {
    const run = runOf(TWO);
    expect(waitingReason(run, run.steps['provision-laptop'], view())).toBe('waiting for needs: create-account');
  });

  it('waiting - a step whose agent disconnected says how long ago and when it is declared lost', () => {
    const run = runOf(TWO);
    const v = view({ 'dir-1': { state: 'disconnected', draining: false, heardMs: NOW - 40_000 } });
    expect(waitingReason(run, run.steps['create-account'], v)).toBe('waiting for agent dir-1, disconnected 40 s ago; lost after 60 s (in 20 s)');
    run.steps['create-account'].status = 'running';
    expect(waitingReason(run, run.steps['create-account'], v)).toBe('waiting for agent dir-1, disconnected 40 s ago; lost after 60 s (in 20 s)');
  });

  it('waiting - a lost agent, a draining one, an unknown one and a connected one that has yet to start the step', () => {
    const run = runOf(TWO);
    const s = run.steps['create-account'];
    expect(waitingReason(run, s, view({ 'dir-1': { state: 'lost', draining: false, heardMs: NOW - 180_000 } }))).toBe(
      'waiting for agent dir-1, lost (silent for 3 min); onAgentLost: wait',
    );
    expect(waitingReason(run, s, view({ 'dir-1': { state: 'connected', draining: true, heardMs: NOW } }))).toBe('waiting for agent dir-1 (draining) to start it');
    expect(waitingReason(run, s, view({ 'dir-1': undefined }))).toBe('waiting for agent dir-1, which this control plane does not know');
    expect(waitingReason(run, s, view())).toBe('waiting for agent dir-1 to start it');
  });

  it('waiting - a hold-up is blocked; needs and an agent that is up to start the step are the ordinary course', () => {
    const run = runOf(TWO);
    const s = run.steps['create-account'];
    expect(waitOf(run, run.steps['provision-laptop'], view()).blocked).toBe(false);
    expect(waitOf(run, s, view()).blocked).toBe(false);
    expect(waitOf(run, s, view({ 'dir-1': { state: 'connected', draining: true, heardMs: NOW } })).blocked).toBe(true);
    expect(waitOf(run, s, view({ 'dir-1': { state: 'disconnected', draining: false, heardMs: NOW - 40_000 } })).blocked).toBe(true);
    expect(waitOf(run, s, view({ 'dir-1': undefined })).blocked).toBe(true);
  });

  it('waiting - a held fan-out instance waits for a maxParallel slot, counting the running ones', () => {
    const run = runOf(`name: fan
steps:
  - { id: patch, target: { labels: { pool: edge }, strategy: all, maxParallel: 2 }, run: "true" }
`);
    const ids = Object.keys(run.steps).filter((id) => run.steps[id].parent === 'patch');
    expect(ids).toHaveLength(3);
    const held = ids.find((id) => run.steps[id].held)!;
    expect(waitingReason(run, run.steps[held], view())).toBe('waiting for a maxParallel slot (2 of 2 running)');
    expect(waitingReason(run, run.steps.patch, view())).toBe('');
  });

  it('waiting - a queued run names the run it waits behind; finally steps wait for the others', () => {
    const first = runOf(TWO, { id: 'r-first' });
    const queued = runOf(TWO, { id: 'r-second', queued: true });
    expect(waitingReason(queued, queued.steps['create-account'], view({}, first))).toBe('queued behind run r-first (concurrency: queue)');
    expect(waitingReason(first, first.steps.notify, view())).toBe('waiting for the other steps to end (finally): create-account, provision-laptop');
  });

  it('waiting - a finished or moving step, or a step of an ended run, has no reason', () => {
    const run = runOf(TWO);
    const s = run.steps['create-account'];
    s.status = 'running';
    expect(waitingReason(run, s, view())).toBe('');
    s.status = 'succeeded';
    expect(waitingReason(run, s, view())).toBe('');
    run.status = 'cancelled';
    expect(waitingReason(run, run.steps['provision-laptop'], view())).toBe('');
  });

  it('waiting - durations read as seconds, minutes or hours', () => {
    expect([roughDuration(999), roughDuration(40_000), roughDuration(119_000), roughDuration(180_000), roughDuration(3 * 3600_000)]).toEqual(['0 s', '40 s', '119 s', '3 min', '3 h']);
  });
});
