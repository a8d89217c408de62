/**
 * How one step reads in `drover status` and `drover run --follow`: where it
 * runs (a fan-out or forEach parent by its instances), its exit code only
 * when a process ran, and why it waits.
 */
import type { Step } from '../../types.js';

/** The instances of group `id` among `steps`. */
function instancesOf(id: string, steps: readonly Step[]): Step[] {
  return steps.filter((s) => s.parent === id);
}

/**
 * "on 3 agents" for a fan-out over agents, "4 instances on 2 agents" for a
 * forEach, "no instances" for one that expanded to none.
 */
export function groupSpread(id: string, steps: readonly Step[]): string {
  const instances = instancesOf(id, steps);
  if (instances.length === 0) return 'no instances';
  const agents = new Set(instances.map((s) => s.agent).filter(Boolean)).size;
  if (agents === instances.length) return `on ${agents} agent${agents === 1 ? '' : 's'}`;
  return `${instances.length} instance${instances.length === 1 ? '' : 's'}${agents ? ` on ${agents} agent${agents === 1 ? '' : 's'}` : ''}`;
}

/** The AGENT cell: the agent, a group's spread, or '-'. */
export function agentCell(step: Step, steps: readonly Step[]): string {
  if (step.kind === 'group') return groupSpread(step.id, steps);
  return step.agent || '-';
}

/** Whether a process of this step ran to an end, so that its exit code means something. */
export function hasExitCode(step: Step): boolean {
  return step.kind !== 'group' && (step.status === 'succeeded' || step.status === 'failed') && step.startedAt > 0 && step.attempt > 0;
}

/** The EXIT cell: the exit code of a step that ran, '-' for one that never did. */
export function exitCell(step: Step): string | number {
  return hasExitCode(step) ? step.exitCode : '-';
}

/** Why each unfinished step waits, one per line ('' when none does). */
export function waitingLines(steps: readonly Step[]): string {
  return steps
    .filter((s) => s.waiting)
    .map((s) => `  ${s.id}: ${s.waiting}\n`)
    .join('');
}
