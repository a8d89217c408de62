/**
 * What a new run starts as: whether its workflow's concurrency rule lets it
 * start, queue or be refused, and its initial record (fan-out instances past
 * maxParallel held back). Pure: the run id and the clock come in.
 */
import type { RunPlan } from '../../common/workflow/model/plan.js';
import type { RunRecord, StepRecord } from '../model/run.js';
import { isTerminal } from './decisions.js';
import { deviceKey, type Placement } from '../../common/workflow/placement/placement.js';
import type { RunsState } from './run-machine.js';

export type Admission = { decision: 'start' } | { decision: 'queue' } | { decision: 'skip'; blocker: RunRecord };

/** Whether a run of `plan` starts now, waits for the active one (concurrency: queue), or is refused (concurrency: skip). */
export function admission(state: RunsState, plan: RunPlan): Admission {
  const active = [...state.active.values(), ...state.submitting.values()].find((r) => r.workflow === plan.workflow);
  if (!active) return { decision: 'start' };
  if (plan.concurrency === 'skip') return { decision: 'skip', blocker: active };
  if (plan.concurrency === 'queue') return { decision: 'queue' };
  return { decision: 'start' };
}

/** The record of a new run, as it is first written. */
export function newRun(id: string, plan: RunPlan, placement: Placement, version: number, queued: boolean, now: number): RunRecord {
  const step = (sid: string, agent: string, parent: string, kind: string): StepRecord => ({
    id: sid,
    parent,
    kind,
    held: false,
    agent,
    previousAgents: [],
    status: 'pending',
    attempt: 0,
    exitCode: 0,
    startedMs: 0,
    endedMs: 0,
    cpuSeconds: 0,
    peakRssBytes: 0,
    outputs: {},
    message: '',
  });
  const steps: Record<string, StepRecord> = {};
  // A step no agent takes yet waits for capacity (target.wait: scheduler/capacity.ts) with no agent.
  for (const s of plan.steps) steps[s.id] = step(s.id, placement.agents[s.id] ?? '', s.parent, s.kind);
  for (const g of plan.groups) {
    steps[g.id] = step(g.id, '', '', 'group');
    // Instances past maxParallel wait for a slot, in declaration order.
    if (g.maxParallel > 0) g.instances.slice(g.maxParallel).forEach((sid) => (steps[sid].held = true));
    if (g.instances.length === 0) Object.assign(steps[g.id], { status: 'succeeded', message: 'no items' });
  }
  return {
    id,
    workflow: plan.workflow,
    status: queued ? 'pending' : 'running',
    createdMs: now,
    startedMs: queued ? 0 : now,
    endedMs: 0,
    params: plan.params,
    message: queued ? 'queued behind an active run (concurrency: queue)' : '',
    cancelRequested: false,
    deadlineExceeded: false,
    workflowVersion: version,
    plan,
    steps,
  };
}

/** Device -> agents running unfinished ssh steps to it: new steps to a device join the agent that holds its sessions. */
export function deviceAffinity(state: RunsState): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const run of state.active.values()) {
    for (const s of run.plan.steps) {
      const rec = run.steps[s.id];
      if (s.kind !== 'ssh' || !s.ssh || !rec?.agent || isTerminal(rec)) continue;
      const key = deviceKey(s.ssh);
      out.set(key, (out.get(key) ?? new Set()).add(rec.agent));
    }
  }
  return out;
}
