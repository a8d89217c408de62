/**
 * Waiting for capacity (`target: { …, wait: 10m }`), after Nomad's blocked
 * evaluations. A step with a wait that no usable agent (not lost, not
 * draining) takes when its run is submitted does not refuse the run: it
 * stays unplaced (agent '') and waits.
 *
 * Its clock starts when the step could run: its run has started and its
 * needs are done (a step behind a 20-minute build does not use up its wait
 * while the build runs). The deadline is stored on the step
 * (StepRecord.waitUntilMs), so a restarted control plane keeps it. When the
 * fleet gains capacity (an agent says Hello, or stops draining: the
 * `capacity` event) waiting steps are placed by the usual rules
 * (common/workflow/placement/placement.ts: least loaded, near their
 * needs) and sent; at the deadline the step fails and its run goes on as
 * for any failed step. A waiting step whose need failed is skipped here, as
 * its agent would have done (there is no agent to do it). Which steps wait
 * from the submit on is decided with the placement, in
 * common/workflow/placement/place-run.ts. Pure, like the rest of the run
 * machine.
 */
import { planIndex } from '../model/plan-index.js';
import type { RunPlan, StepPlan } from '../../common/workflow/model/plan.js';
import { TERMINAL_STEP, type RunRecord, type StepRecord } from '../model/run.js';
import { describeTarget, type FleetAgent } from '../../common/workflow/model/target.js';
import { formatMs, tolerated, type Decisions } from './decisions.js';
import { deviceKey, place } from '../../common/workflow/placement/placement.js';

/** Units of a plan that may wait for capacity (cached per plan: the sweep asks once a second). */
const waitingUnits = new WeakMap<RunPlan, readonly StepPlan[]>();

function unitsWithWait(plan: RunPlan): readonly StepPlan[] {
  let units = waitingUnits.get(plan);
  if (!units) waitingUnits.set(plan, (units = plan.steps.filter((s) => (s.target.waitMs ?? 0) > 0)));
  return units;
}

/** Whether a step record is unplaced and waits for an agent (its plan has target.wait). */
export function waitsForCapacity(plan: StepPlan | undefined, rec: StepRecord): boolean {
  return !!plan && (plan.target.waitMs ?? 0) > 0 && !rec.agent && !TERMINAL_STEP.has(rec.status);
}

/**
 * Whether any active run has a step waiting for capacity: the `capacity`
 * event has nothing to do otherwise, so the caller need not take a
 * snapshot of the fleet for it (10,000 agents reconnecting at once would
 * each copy the whole fleet).
 */
export function anyWaitingForCapacity(active: Iterable<RunRecord>): boolean {
  for (const run of active) if (waitingNow(run).length) return true;
  return false;
}

/** The units of an active run that wait for an agent now (none while the run is being cancelled). */
function waitingNow(run: RunRecord): StepPlan[] {
  return run.cancelRequested ? [] : unitsWithWait(run.plan).filter((p) => waitsForCapacity(p, run.steps[p.id]));
}

/** What a waiting step waits for, for sentences: "an agent matching role=assets", "agent web-1", "a proxy agent for network "lab"". */
export function wanted(plan: StepPlan): string {
  if (plan.kind === 'ssh' && plan.ssh) return `a proxy agent for network "${plan.ssh.network}" (device ${deviceKey(plan.ssh)})`;
  const t = plan.target;
  if (t.agent && Object.keys(t.labels).length === 0 && t.matchExpressions.length === 0) return `agent ${t.agent}`;
  return `an agent matching ${describeTarget(t)}`;
}

/** Why a waiting step waits: "waiting for an agent matching role=assets (up to 10m, until 14:02 UTC)". */
export function capacityReason(plan: StepPlan, rec: StepRecord, now: number): string {
  const waitMs = plan.target.waitMs ?? 0;
  const until = rec.waitUntilMs ? `, until ${clockTime(rec.waitUntilMs, now, waitMs)}` : '';
  return `waiting for ${wanted(plan)} (up to ${formatMs(waitMs)}${until})`;
}

/** Said after a waiting step's needs: "; then for an agent matching role=assets, none now (up to 10m)". */
export function thenWaits(plan: StepPlan): string {
  return `; then for ${wanted(plan)}, none now (up to ${formatMs(plan.target.waitMs ?? 0)})`;
}

/** The message a step fails with when its wait ends. */
export function expiredMessage(plan: StepPlan): string {
  const what = wanted(plan);
  const within = `within ${formatMs(plan.target.waitMs ?? 0)} (target.wait)`;
  return what.startsWith('agent ') ? `${what} did not join ${within}` : `no ${what.replace(/^an? /, '')} joined ${within}`;
}

/** "14:02 UTC" for waits of 10 minutes or more, else "14:02:30 UTC"; with the date when it is not today's. */
export function clockTime(ms: number, now: number, waitMs: number): string {
  const iso = new Date(ms).toISOString();
  const time = waitMs >= 600_000 ? iso.slice(11, 16) : iso.slice(11, 19);
  return `${iso.slice(0, 10) === new Date(now).toISOString().slice(0, 10) ? '' : `${iso.slice(0, 10)} `}${time} UTC`;
}

/**
 * A waiting step's needs may have changed: once they are all done it is
 * skipped (a need failed, and it is no finally step) or its clock starts.
 * Held instances (maxParallel) and steps of runs that have not started wait
 * with no clock.
 */
export function settleWaiting(d: Decisions, run: RunRecord, plan: StepPlan) {
  const rec = run.steps[plan.id];
  if (run.status !== 'running' || run.cancelRequested || rec.held || rec.waitUntilMs || !waitsForCapacity(plan, rec)) return;
  const needs = plan.needs.map((n) => run.steps[n]).filter((s) => s !== undefined);
  if (needs.some((s) => !TERMINAL_STEP.has(s.status))) return;
  const bad = plan.isFinally ? undefined : needs.find((s) => s.status !== 'succeeded' && !tolerated(run, s));
  if (bad) return d.finishStep(run, rec, 'skipped', `skipped: needs ${bad.id}, which ${bad.status === 'failed' ? 'failed' : `was ${bad.status}`}`);
  d.change(run, rec, () => (rec.waitUntilMs = d.now + (plan.target.waitMs ?? 0)));
  d.notifyStep(run, rec);
  d.log('info', { run: run.id, step: rec.id, waitUntilMs: rec.waitUntilMs }, `step waits for ${wanted(plan)}`);
}

/** A run started: its waiting steps without needs (or with needs done) start their clocks. */
export function armWaits(d: Decisions, run: RunRecord) {
  for (const plan of unitsWithWait(run.plan)) settleWaiting(d, run, plan);
}

/** `step` finished: waiting steps that need it may be skipped or start their clocks. */
export function releaseWaiting(d: Decisions, run: RunRecord, step: StepRecord) {
  for (const plan of planIndex(run.plan).dependents(step.id)) if ((plan.target.waitMs ?? 0) > 0) settleWaiting(d, run, plan);
}

/**
 * Once a second: waiting steps past their deadline fail; a waiting step
 * whose clock should run but does not (its needs ended while a held
 * instance, or just before a restart) starts it.
 */
export function sweepWaits(d: Decisions) {
  for (const run of [...d.state.active.values()]) {
    if (run.status !== 'running') continue;
    let ended = false;
    for (const plan of unitsWithWait(run.plan)) {
      const rec = run.steps[plan.id];
      if (!waitsForCapacity(plan, rec)) continue;
      if (!rec.waitUntilMs) settleWaiting(d, run, plan);
      else if (d.now >= rec.waitUntilMs) {
        d.log('warn', { run: run.id, step: rec.id, waitMs: plan.target.waitMs }, 'step failed: no agent for it within its wait');
        d.finishStep(run, rec, 'failed', expiredMessage(plan));
        ended = true;
      }
    }
    if (ended) {
      d.persist(run);
      d.checkFinished(run);
    }
  }
}

/**
 * The fleet gained capacity (an agent said Hello or stopped draining):
 * places the waiting steps of active runs, oldest run first, and sends
 * those of running runs to their agents. Load counts the steps placed here
 * too, so a burst of waiting steps spreads over the agents that joined.
 */
export function placeWaiting(d: Decisions, fleetNow: readonly FleetAgent[], affinity: ReadonlyMap<string, ReadonlySet<string>>) {
  const fleet = fleetNow.map((a) => ({ ...a }));
  const runs = [...d.state.active.values()].sort((a, b) => a.createdMs - b.createdMs || (a.id < b.id ? -1 : 1));
  for (const run of runs) {
    const units = waitingNow(run);
    if (units.length === 0) continue;
    const placed: Record<string, string> = {};
    for (const s of Object.values(run.steps)) if (s.agent) placed[s.id] = s.agent;
    const { agents } = place(
      units.map((u) => ({ ...u, agent: '' })),
      fleet,
      affinity,
      placed,
    );
    const to = new Set<string>();
    for (const unit of units) {
      const agent = agents[unit.id];
      if (!agent) continue;
      const rec = run.steps[unit.id];
      const waitedMs = rec.waitUntilMs ? d.now - (rec.waitUntilMs - (unit.target.waitMs ?? 0)) : 0;
      d.change(run, rec, () => {
        rec.agent = agent;
        rec.message = '';
      });
      d.notifyStep(run, rec);
      d.log('info', { run: run.id, step: rec.id, agent, waitedMs }, 'step placed after waiting for capacity');
      const a = fleet.find((f) => f.name === agent);
      if (a) a.runningSteps++;
      to.add(agent);
    }
    if (run.status === 'running') for (const agent of [...to].sort()) d.dispatch(run, agent);
  }
}
