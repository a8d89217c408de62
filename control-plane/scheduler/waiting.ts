/**
 * Why a step that has not finished is not moving (StepInfo.waiting), in the
 * words `drover run --follow` and `drover status` print instead of a silent
 * "pending": its needs, its run's queue, a maxParallel slot, or its agent
 * (disconnected, lost, draining, or about to start it). Pure: the run, the
 * fleet's live state and the clock come in; the API edge calls it.
 */
import { planIndex } from '../model/plan-index.js';
import { TERMINAL_STEP, type RunRecord, type StepRecord } from '../model/run.js';
import { describeTarget } from '../../common/workflow/model/target.js';
import { capacityReason, thenWaits, waitsForCapacity } from './capacity.js';
import { gateWait } from './approvals.js';

/** What the fleet and the other runs look like now, as far as a waiting reason needs to know. */
export interface WaitingView {
  now: number;
  /** How long a disconnected agent has before it is declared lost (the server's --lost-after-ms). */
  lostAfterMs: number;
  /** An agent's live state; undefined for an agent the control plane does not know. */
  agent(name: string): { state: 'connected' | 'disconnected' | 'lost'; draining: boolean; heardMs: number } | undefined;
  /** The run a queued run of `workflow` waits for (concurrency: queue); undefined when there is none. */
  blockerOf(run: RunRecord): RunRecord | undefined;
}

/** "40 s", "3 min", "2 h": how long ago something was, rounded down, for a sentence. */
export function roughDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s} s`;
  if (s < 120 * 60) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h`;
}

/**
 * Why a step waits, and whether that is a hold-up (its agent is gone, lost,
 * unknown or draining; its run is queued; it waits for a maxParallel slot or
 * for any agent at all) rather than the ordinary wait for its needs, for the
 * other steps (finally), or for an agent that is up to start it.
 */
export interface Wait {
  reason: string;
  blocked: boolean;
}

/** Why `step` of `run` waits; '' for a step that is finished or moving. */
export function waitingReason(run: RunRecord, step: StepRecord, view: WaitingView): string {
  return waitOf(run, step, view).reason;
}

const NONE: Wait = { reason: '', blocked: false };
const blocked = (reason: string): Wait => ({ reason, blocked: true });
const ordinary = (reason: string): Wait => ({ reason, blocked: false });

/** Why `step` of `run` waits, and whether it is held up (Wait). */
export function waitOf(run: RunRecord, step: StepRecord, view: WaitingView): Wait {
  if (TERMINAL_STEP.has(step.status) || (run.status !== 'pending' && run.status !== 'running')) return NONE;
  if (run.status === 'pending') {
    const blocker = view.blockerOf(run);
    return blocked(blocker ? `queued behind run ${blocker.id} (concurrency: queue)` : 'queued (concurrency: queue)');
  }
  // A gate runs on no agent: it waits for people once open, for its needs before.
  if (step.kind === 'approval') return step.status === 'running' ? ordinary(gateWait(run, step, view.now)) : needsWait(run, step);
  if (step.status === 'running') return step.kind === 'group' ? NONE : agentSilence(run, step.agent, view, 'to report');
  const index = planIndex(run.plan);
  const plan = index.step(step.id) ?? index.group(step.id);
  if (plan?.isFinally) {
    const open = Object.values(run.steps).filter((s) => !s.parent && !TERMINAL_STEP.has(s.status) && !(index.step(s.id) ?? index.group(s.id))?.isFinally);
    if (open.length) return ordinary(`waiting for the other steps to end (finally): ${names(open.map((s) => s.id))}`);
  }
  const needs = (plan?.needs ?? []).filter((n) => run.steps[n] && !TERMINAL_STEP.has(run.steps[n].status));
  const unit = index.step(step.id);
  if (needs.length) return ordinary(`waiting for needs: ${names(needs)}${unit && waitsForCapacity(unit, step) ? thenWaits(unit) : ''}`);
  if (step.kind === 'group') return NONE;
  if (step.held) {
    const group = index.group(step.parent);
    const active = (group?.instances ?? []).filter((id) => !run.steps[id].held && !TERMINAL_STEP.has(run.steps[id].status)).length;
    return blocked(`waiting for a maxParallel slot (${active} of ${group?.maxParallel ?? '?'} running)`);
  }
  if (unit && waitsForCapacity(unit, step)) return blocked(capacityReason(unit, step, view.now));
  if (!step.agent) {
    const target = index.step(step.id)?.target;
    return blocked(`waiting for an agent${target ? ` matching ${describeTarget(target)}` : ''}`);
  }
  return agentSilence(run, step.agent, view, 'to start it');
}

function needsWait(run: RunRecord, step: StepRecord): Wait {
  const needs = (planIndex(run.plan).step(step.id)?.needs ?? []).filter((n) => run.steps[n] && !TERMINAL_STEP.has(run.steps[n].status));
  return needs.length ? ordinary(`waiting for needs: ${names(needs)}`) : NONE;
}

/** Why a step placed on `name` waits for it: the agent's state, or that it is up and has yet to act. */
function agentSilence(run: RunRecord, name: string, view: WaitingView, act: 'to report' | 'to start it'): Wait {
  const agent = view.agent(name);
  if (!agent) return blocked(`waiting for agent ${name}, which this control plane does not know`);
  const ago = roughDuration(view.now - agent.heardMs);
  if (agent.state === 'disconnected') {
    const left = Math.max(0, agent.heardMs + view.lostAfterMs - view.now);
    return blocked(`waiting for agent ${name}, disconnected ${ago} ago; lost after ${roughDuration(view.lostAfterMs)}${left > 0 ? ` (in ${roughDuration(left)})` : ''}`);
  }
  if (agent.state === 'lost') return blocked(`waiting for agent ${name}, lost (silent for ${ago}); onAgentLost: ${run.plan.onAgentLost}`);
  if (act === 'to report') return NONE;
  return agent.draining ? blocked(`waiting for agent ${name} (draining) ${act}`) : ordinary(`waiting for agent ${name} ${act}`);
}

/** "a, b, c" or "a, b, c and 4 more". */
function names(ids: readonly string[]): string {
  const shown = ids.slice(0, 3).join(', ');
  return ids.length > 3 ? `${shown} and ${ids.length - 3} more` : shown;
}
