/**
 * What happens to runs when an agent comes and goes: a returning agent gets
 * its unfinished slices again (and is told to stop what is no longer its
 * to run), a lost agent's steps follow their workflow's onAgentLost policy
 * (wait, retry elsewhere, or fail), and a step whose agent stopped
 * reporting fails once it is past its timeout plus a slack.
 */
import { planIndex } from '../model/plan-index.js';
import type { RunRecord } from '../model/run.js';
import { AGENT_LOST, NO_RESULT, supersede } from './attempts.js';
import { formatMs, isTerminal, type Decisions } from './decisions.js';
import type { FleetAgent } from '../../common/workflow/model/target.js';
import { place } from '../../common/workflow/placement/placement.js';
import { settleWaiting } from './capacity.js';

/**
 * An agent (re)connected: give it every unfinished slice, repeat pending
 * cancels, and stop what it runs that is no longer its to run (steps moved
 * away while it was lost, steps of runs that ended).
 */
export function agentConnected(d: Decisions, agent: string, attempts: { id: string; run: RunRecord | undefined }[]) {
  for (const run of d.state.active.values()) {
    if (run.status !== 'running') continue;
    const progress = d.progressOf(run);
    for (const s of progress.moved) {
      if (s.agent !== agent && s.previousAgents.includes(agent)) {
        d.sendCancel(agent, run.id, s.id, `moved to ${s.agent || 'nowhere'} while ${agent} was lost`);
      }
    }
    if (!progress.hasAgent(agent)) continue;
    if (run.cancelRequested) d.sendCancel(agent, run.id, '', run.message);
    else d.dispatch(run, agent);
  }
  for (const { id: attemptId, run } of attempts) {
    const [runId, stepId] = attemptId.split('/');
    const step = run?.steps[stepId];
    if (!run || !step || step.agent !== agent || isTerminal(step)) {
      const why = !run ? 'the run is unknown' : !step ? 'the step is unknown' : step.agent !== agent ? `it now runs on ${step.agent}` : `the step already ${step.status}`;
      d.log('warn', { agent, attemptId, why }, 'agent runs an attempt it should not; cancelling it', agent);
      d.sendCancel(agent, runId, stepId, `stopped by the control plane: ${why}`);
    }
  }
}

/** An agent was silent past lostAfter: its unfinished steps follow their workflow's onAgentLost policy. */
export function agentLost(d: Decisions, agent: string, cause: string, fleetNow: FleetAgent[]) {
  for (const run of [...d.state.active.values()]) {
    if (run.status !== 'running') continue;
    const stranded = d.unfinishedOn(run, agent);
    if (stranded.length === 0) continue;
    const policy = run.plan.onAgentLost;
    d.log('warn', { agent, run: run.id, steps: stranded.length, policy }, 'agent lost with unfinished steps');
    if (policy === 'wait') continue;
    const fleet = fleetNow.filter((a) => a.name !== agent);
    for (const s of stranded) {
      d.change(run, s, () => (s.previousAgents = [...s.previousAgents, agent]));
      const plan = planIndex(run.plan).step(s.id)!;
      // Instances of a fan-out over agents belong to their agent; ssh steps (devices) can move to another proxy.
      const bound = plan.parent && plan.target.strategy === 'all' && plan.kind !== 'ssh';
      const target = policy === 'retry' && !bound ? place([{ ...plan, agent: '' }], fleet).agents[s.id] : undefined;
      if (!target && policy === 'retry' && !bound && (plan.target.waitMs ?? 0) > 0) {
        // target.wait: no other agent now, so the step waits for one as it would have at submit, with a fresh wait.
        d.change(run, s, () => {
          supersede(s, agent, AGENT_LOST, 'the step waits for another agent');
          s.agent = '';
          s.status = 'pending';
          delete s.waitUntilMs;
          s.message = `agent ${agent} was lost (${cause}); waiting for another`;
        });
        settleWaiting(d, run, plan);
        d.notifyStep(run, s);
        continue;
      }
      if (!target) {
        const why = policy === 'retry' ? '; no other agent matches its target' : '';
        supersede(s, agent, AGENT_LOST, 'the step failed');
        d.finishStep(run, s, 'failed', `agent ${agent} was lost (${cause})${why}`);
        continue;
      }
      d.change(run, s, () => {
        supersede(s, agent, AGENT_LOST, `the step moved to ${target}`);
        s.agent = target;
        s.status = 'pending';
        s.message = `moved from ${agent} (lost) to ${target}`;
      });
      d.notifyStep(run, s);
      d.dispatch(run, target);
    }
    d.persist(run);
    d.checkFinished(run);
  }
}

/** Default cause of agentLost, for its messages. */
export function silentFor(lostAfterMs: number): string {
  return `no contact for ${formatMs(lostAfterMs)}`;
}

/**
 * The control plane's backstop for step timeouts: a step still running
 * stepDeadlineSlackMs past its timeout has an agent that stopped
 * reporting; it fails here (and is cancelled on the agent if reachable).
 */
export function sweepStepDeadlines(d: Decisions) {
  const slack = d.state.config.stepDeadlineSlackMs;
  for (const run of [...d.state.active.values()]) {
    if (run.status !== 'running') continue;
    for (const plan of run.plan.steps) {
      const s = run.steps[plan.id];
      if (s.status !== 'running' || !plan.timeoutMs || !s.startedMs) continue;
      if (d.now < s.startedMs + plan.timeoutMs + slack) continue;
      d.sendCancel(s.agent, run.id, s.id, 'past its timeout');
      d.change(run, s, () => {
        s.previousAgents = [...s.previousAgents, s.agent];
        supersede(s, s.agent, NO_RESULT, 'the step failed');
      });
      d.finishStep(run, s, 'failed', `no result from agent ${s.agent} within the step's timeout (${formatMs(plan.timeoutMs)}) plus ${formatMs(slack)}; the agent stopped reporting`);
      d.persist(run);
      d.checkFinished(run);
    }
  }
}
