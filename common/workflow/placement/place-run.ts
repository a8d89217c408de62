/**
 * A compiled plan placed on a fleet snapshot, as a run's submit and `drover
 * plan` see it: which agent each step goes to, which steps wait for capacity
 * (target.wait, a warning) and which refuse the run now (blockers,
 * NO_MATCHING_AGENT). The control plane calls it with its fleet; `drover plan
 * --fleet` with a saved one, so both show the same plan. Pure.
 */
import { formatDeclared } from '../../duration.js';
import type { Problem } from '../../errors.js';
import type { RunPlan } from '../model/plan.js';
import { matches, type FleetAgent } from '../model/target.js';
import { place, type Placement } from './placement.js';

export interface PlacedRun {
  placement: Placement;
  /** Warnings for steps that wait for an agent (target.wait) instead of refusing the run. */
  waiting: Problem[];
  /** Why a run of this plan would be refused now: steps no usable agent can take and that may not wait, fan-outs over no agent. */
  blockers: Problem[];
}

/** Places `plan` on `fleet`; `affinity` as for place() (the devices' agents of unfinished runs; none offline). */
export function placeRun(plan: RunPlan, fleet: FleetAgent[], affinity: ReadonlyMap<string, ReadonlySet<string>> = new Map()): PlacedRun {
  const placement = place(plan.steps, fleet, affinity);
  // Steps with target.wait that no agent takes now wait for one instead of refusing the run (control-plane/scheduler/capacity.ts).
  const unplaced = splitUnplaced(plan, placement, fleet);
  const blockers = [
    ...unplaced.blockers,
    ...plan.groups
      .filter((g) => g.over === 'agents' && g.instances.length === 0)
      .map((g) => ({ path: `step "${g.id}".target`, line: 0, column: 0, severity: 'error' as const, message: 'the fan-out matches no agent that is not draining' })),
  ];
  return { placement, waiting: unplaced.waiting, blockers };
}

/**
 * A plan's unplaced steps split in two: those that refuse a run now
 * (blockers, NO_MATCHING_AGENT) and those that wait for capacity, turned
 * into warnings saying so (what `drover plan` shows for them). A step that
 * no agent matches at all has the compiler's warning already (with its
 * line), which says it waits: it gets no second one.
 */
export function splitUnplaced(plan: RunPlan, placement: Placement, fleet: readonly FleetAgent[]): { blockers: Problem[]; waiting: Problem[] } {
  const units = new Map(plan.steps.map((s) => [s.id, s]));
  const blockers: Problem[] = [];
  const waiting: Problem[] = [];
  placement.problems.forEach((p, i) => {
    const unit = units.get(placement.unplaced[i] ?? '');
    const waitMs = unit?.target.waitMs ?? 0;
    if (!unit || waitMs <= 0) return void blockers.push(p);
    if (unit.kind !== 'ssh' && !fleet.some((a) => a.state !== 'lost' && matches(a, unit.target))) return;
    waiting.push({ ...p, severity: 'warning', message: `${p.message}; the run is accepted and the step waits up to ${formatDeclared(waitMs)} for one (target.wait)` });
  });
  return { blockers, waiting };
}
