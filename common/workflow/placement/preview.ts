/**
 * What `drover plan` shows before a run: the declared steps in waves (a step
 * comes one wave after its deepest need; a fan-out or forEach counts once),
 * each with the agents that match it now and where placement put it. Pure: a
 * function of the plan, its placement and a fleet snapshot.
 */
import type { GroupPlan, RunPlan, StepPlan } from '../model/plan.js';
import { describeTarget, matches, proxiesFor, type FleetAgent } from '../model/target.js';
import type { Placement } from './placement.js';

/** A declared step as the preview shows it. */
export interface PreviewStep {
  id: string;
  kind: StepPlan['kind'] | '';
  /** Empty for finally steps, which wait for every other step anyway. */
  needs: string[];
  target: string;
  strategy: 'one' | 'all';
  /** Agents the target matches now; for ssh steps, the proxies for the device's network. */
  matches: { name: string; state: FleetAgent['state']; draining: boolean }[];
  instances: string[];
  /** The placed agent of a plain step; '' for a group. */
  agent: string;
  when: string;
  isFinally: boolean;
  maxParallel: number;
  maxFailures: number;
  /** target.wait (0 for none): with no usable agent now, the step would wait this long for one. */
  waitMs: number;
}

export interface PreviewWave {
  index: number;
  /** In declared order. */
  steps: PreviewStep[];
}

interface Entry {
  id: string;
  needs: string[];
  /** A group's first instance stands for the group's kind and target. */
  unit: StepPlan | undefined;
  group: GroupPlan | undefined;
}

/** The waves of a compiled plan; `fleet` is the snapshot its matches are taken from. */
export function previewWaves(plan: RunPlan, placement: Placement, fleet: readonly FleetAgent[]): PreviewWave[] {
  const firstInstance = new Map<string, StepPlan>();
  for (const s of plan.steps) if (s.parent && !firstInstance.has(s.parent)) firstInstance.set(s.parent, s);
  const entries: Entry[] = [
    ...plan.steps.filter((s) => !s.parent).map((s) => ({ id: s.id, needs: s.needs, unit: s, group: undefined })),
    ...plan.groups.map((g) => ({ id: g.id, needs: g.needs, unit: firstInstance.get(g.id), group: g })),
  ];
  const level = levels(entries);
  const waves: PreviewWave[] = [];
  const declaredOrder = new Map(plan.steps.map((s, i) => [s.parent || s.id, i]));
  for (const e of [...entries].sort((a, b) => (declaredOrder.get(a.id) ?? 0) - (declaredOrder.get(b.id) ?? 0))) {
    const l = level.get(e.id)!;
    while (waves.length <= l) waves.push({ index: waves.length, steps: [] });
    waves[l].steps.push(previewStep(e, placement, fleet));
  }
  return waves;
}

function previewStep(e: Entry, placement: Placement, fleet: readonly FleetAgent[]): PreviewStep {
  const target = e.unit?.target;
  const ssh = e.unit?.ssh;
  return {
    id: e.id,
    kind: e.unit?.kind ?? '',
    needs: e.group?.isFinally || e.unit?.isFinally ? [] : e.needs,
    target: !target ? '' : ssh && e.group ? `devices ${describeTarget({ ...target, device: '' })}` : describeTarget(target),
    strategy: target?.strategy ?? 'one',
    matches: target
      ? fleet.filter((a) => (ssh ? proxiesFor(a, ssh.network) : matches(a, target))).map((a) => ({ name: a.name, state: a.state, draining: a.draining }))
      : [],
    instances: e.group?.instances ?? [],
    agent: e.group ? '' : (placement.agents[e.id] ?? ''),
    when: e.unit?.when ?? '',
    isFinally: e.group?.isFinally ?? e.unit?.isFinally ?? false,
    maxParallel: e.group?.maxParallel ?? 0,
    maxFailures: e.group?.maxFailures ?? 0,
    waitMs: target?.waitMs ?? 0,
  };
}

/**
 * Each entry's wave: 0 without needs, else one past its deepest need (a need
 * that is no entry counts as wave 0). Kahn's algorithm, O(entries + needs);
 * the compiler has rejected cycles.
 */
function levels(entries: readonly Entry[]): Map<string, number> {
  const ids = new Set(entries.map((e) => e.id));
  const level = new Map<string, number>();
  const waiting = new Map<string, number>();
  const dependents = new Map<string, Entry[]>();
  const ready: Entry[] = [];
  for (const e of entries) {
    const inner = e.needs.filter((n) => ids.has(n));
    level.set(e.id, e.needs.length ? 1 : 0);
    waiting.set(e.id, inner.length);
    for (const n of inner) {
      const list = dependents.get(n);
      if (list) list.push(e);
      else dependents.set(n, [e]);
    }
    if (inner.length === 0) ready.push(e);
  }
  for (let i = 0; i < ready.length; i++) {
    const done = ready[i];
    for (const d of dependents.get(done.id) ?? []) {
      level.set(d.id, Math.max(level.get(d.id)!, level.get(done.id)! + 1));
      const left = waiting.get(d.id)! - 1;
      waiting.set(d.id, left);
      if (left === 0) ready.push(d);
    }
  }
  return level;
}
