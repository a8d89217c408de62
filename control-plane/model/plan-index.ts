/**
 * Lookups over a compiled plan: a step or group by id, the steps that need a
 * given one, the display order. A plan never changes once compiled, so the
 * index is built once per plan (on first use) and kept with it; every lookup
 * is then O(1) instead of a scan of the plan, which for a fan-out to
 * thousands of agents made each step event cost O(fleet size).
 */
import type { GroupPlan, RunPlan, StepPlan } from '../../common/workflow/model/plan.js';

export interface PlanIndex {
  step(id: string): StepPlan | undefined;
  group(id: string): GroupPlan | undefined;
  /** Steps (units) whose needs name `id` (a step or a group). */
  dependents(id: string): readonly StepPlan[];
  /** Every unit and group id in declared order; a group comes just before its instances. */
  readonly order: readonly string[];
  /** The finally steps (units). */
  readonly finals: readonly StepPlan[];
}

const cache = new WeakMap<RunPlan, PlanIndex>();

export function planIndex(plan: RunPlan): PlanIndex {
  let index = cache.get(plan);
  if (!index) cache.set(plan, (index = build(plan)));
  return index;
}

function build(plan: RunPlan): PlanIndex {
  const steps = new Map(plan.steps.map((s) => [s.id, s]));
  const groups = new Map(plan.groups.map((g) => [g.id, g]));
  const dependents = new Map<string, StepPlan[]>();
  for (const s of plan.steps) {
    for (const n of s.needs) {
      let list = dependents.get(n);
      if (!list) dependents.set(n, (list = []));
      list.push(s);
    }
  }
  const order: string[] = [];
  const placed = new Set<string>();
  for (const s of plan.steps) {
    if (s.parent && !placed.has(s.parent)) {
      placed.add(s.parent);
      order.push(s.parent);
    }
    order.push(s.id);
  }
  for (const g of plan.groups) if (!placed.has(g.id)) order.push(g.id);
  return {
    step: (id) => steps.get(id),
    group: (id) => groups.get(id),
    dependents: (id) => dependents.get(id) ?? [],
    order,
    finals: plan.steps.filter((s) => s.isFinally),
  };
}
