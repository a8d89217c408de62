/**
 * Re-runs (`drover rerun`): which steps of a finished run a new run of the
 * same plan copies instead of running again, and the new run's first
 * record. Pure: the old run, the mode, the placement, the id and the clock
 * come in; control-plane/rerun.ts checks the request and starts the run.
 *
 * A step is reused when it succeeded, is not a finally step (cleanup and
 * notifications belong to each run) nor an approval gate (a re-run asks its
 * approvers again: a yes is for one run), is not excluded by the mode, and
 * every step it needs is reused too: a step whose inputs run again runs
 * again. A fan-out or forEach group is reused when it succeeded and all of
 * its instances are; a group that runs again runs the instances that were
 * not reused. Steps that failed, were skipped or cancelled always run again
 * (a `when` is evaluated afresh).
 */
import { planIndex } from '../model/plan-index.js';
import type { RunRecord, StepRecord } from '../model/run.js';
import { newRun } from './admission.js';
import type { Placement } from '../../common/workflow/placement/placement.js';

/**
 * What to run again: everything (`all`), a step and what depends on it
 * (`from`, a declared step, a group or one instance), or what did not
 * succeed (`failed`: Rundeck's "retry failed nodes").
 */
export type RerunMode = { kind: 'all' } | { kind: 'from'; step: string } | { kind: 'failed' };

/** The ids (units and groups) of `old`'s steps that a re-run in `mode` copies. */
export function reusedSteps(old: RunRecord, mode: RerunMode): Set<string> {
  const reused = new Set<string>();
  if (mode.kind === 'all') return reused;
  const index = planIndex(old.plan);
  const excluded = new Set<string>();
  if (mode.kind === 'from') {
    excluded.add(mode.step);
    for (const id of index.group(mode.step)?.instances ?? []) excluded.add(id);
  }
  const ok = (id: string, isFinally: boolean) => !isFinally && !excluded.has(id) && old.steps[id]?.status === 'succeeded' && old.steps[id].kind !== 'approval';
  // Units before the groups that need them, groups after their instances: one pass in dependency order.
  const decided = new Set<string>();
  const visit = (id: string): boolean => {
    if (decided.has(id)) return reused.has(id);
    decided.add(id);
    const group = index.group(id);
    const step = index.step(id);
    let yes: boolean;
    if (group) {
      // Instances first (each visits the group's needs), so a group with none still checks its needs.
      const instances = group.instances.map(visit);
      yes = ok(id, group.isFinally) && group.needs.every(visit) && instances.every(Boolean);
      // A group that runs again settles only when one of its instances changes: it needs at least one to run.
      if (!yes && group.instances.length > 0 && instances.every(Boolean)) for (const i of group.instances) reused.delete(i);
    } else if (step) {
      yes = ok(id, step.isFinally) && step.needs.every(visit);
    } else {
      yes = false;
    }
    if (yes) reused.add(id);
    return yes;
  };
  for (const id of index.order) visit(id);
  return reused;
}

/**
 * The re-run's record as it is first written: `old`'s plan (a copy: the
 * same version, params and hash), a new id, fresh records for the steps that
 * run (placed by `placement`; instances past maxParallel held, counted among
 * those that run), and copies of the reused ones, succeeded with their
 * outputs and `reusedFrom` set. A reused step never reaches an agent: its
 * dependents get its outputs with their slices, as for any finished need.
 */
export function rerunRecord(id: string, old: RunRecord, reused: ReadonlySet<string>, placement: Placement, queued: boolean, now: number): RunRecord {
  const plan = structuredClone(old.plan);
  const run = newRun(id, plan, placement, old.workflowVersion, queued, now);
  for (const sid of reused) run.steps[sid] = reusedCopy(old.steps[sid], old.id);
  for (const g of plan.groups) {
    if (reused.has(g.id)) continue;
    const toRun = g.instances.filter((i) => !reused.has(i));
    toRun.forEach((i, n) => (run.steps[i].held = g.maxParallel > 0 && n >= g.maxParallel));
  }
  run.trigger = 'rerun';
  run.rerunOf = old.id;
  return run;
}

/**
 * A reused step as the new run shows it: its status, outputs, agent, exit
 * code, times and message are the old run's; it used no CPU or memory in
 * this run and made no attempt in it (its attempts and logs stay with the
 * old run), so stats do not count it twice.
 */
function reusedCopy(s: StepRecord, from: string): StepRecord {
  return { ...s, outputs: { ...s.outputs }, held: false, previousAgents: [], cpuSeconds: 0, peakRssBytes: 0, attempts: [], reusedFrom: from };
}
