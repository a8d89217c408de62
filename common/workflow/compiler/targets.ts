/** Targets against the fleet now: the agents a step may run on, and a warning for a target no agent matches. */
import { formatDeclared } from '../../duration.js';
import type { TargetPlan } from '../model/plan.js';
import { describeTarget, matches, type FleetAgent } from '../model/target.js';
import type { Problems } from './problems.js';
import type { StepDoc, WorkflowDoc } from './schema.js';
import type { PathSegment } from './source.js';
import { targetPlan } from './step-plan.js';

/**
 * The agents (not lost) a step's target matches in `fleet`, with a warning at
 * its `target` when there is none; undefined for steps that run on no agent
 * of their own choosing (ssh steps select devices, approval gates run nowhere)
 * or without a fleet.
 */
export function matchingAgents(s: StepDoc, target: TargetPlan, fleet: FleetAgent[] | undefined, path: PathSegment[], problems: Problems): FleetAgent[] | undefined {
  const matching = s.ssh || s.approval ? undefined : fleet?.filter((a) => matches(a, target) && a.state !== 'lost');
  if (matching && matching.length === 0) {
    const waits = target.waitMs ? `; the run is accepted and the step waits up to ${formatDeclared(target.waitMs)} for one (target.wait)` : '';
    problems.add([...path, 'target'], `no agent in the fleet matches ${describeTarget(target)} now${waits}`, 'warning');
  }
  return matching;
}

/** validate mode with the fleet at hand (`drover validate --server`): a warning for each target no agent matches. */
export function checkTargets(wf: WorkflowDoc, fleet: FleetAgent[], problems: Problems) {
  wf.steps.forEach((s, i) => matchingAgents(s, targetPlan(s), fleet, ['steps', i], problems));
  (wf.finally ?? []).forEach((s, i) => matchingAgents(s, targetPlan(s), fleet, ['finally', i], problems));
}
