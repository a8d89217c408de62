/**
 * Where each step runs. Pure: a function of the plan and a fleet snapshot.
 * strategy "one": among matching agents prefer connected, not draining, then
 * an agent that already runs one of the step's needs (sequential steps stay on
 * one host and cost no round trip), then the fewest running steps, then the
 * lowest CPU from the latest heartbeat, then the name (deterministic ties).
 */
import type { Problem } from '../errors.js';
import type { StepPlan, TargetPlan } from '../compiler/plan.js';

export interface FleetAgent {
  name: string;
  labels: Record<string, string>;
  state: 'connected' | 'disconnected' | 'lost';
  draining: boolean;
  runningSteps: number;
  cpuPercent: number;
}

export function matches(agent: Pick<FleetAgent, 'name' | 'labels'>, target: TargetPlan): boolean {
  if (target.agent && target.agent !== agent.name) return false;
  if (!Object.entries(target.labels).every(([k, v]) => agent.labels[k] === v)) return false;
  return target.matchExpressions.every((e) => {
    const has = Object.hasOwn(agent.labels, e.key);
    switch (e.operator) {
      case 'In':
        return has && e.values.includes(agent.labels[e.key]);
      case 'NotIn':
        return !has || !e.values.includes(agent.labels[e.key]);
      case 'Exists':
        return has;
      case 'DoesNotExist':
        return !has;
    }
  });
}

/** A target as people write selectors: "agent=web-1,role=web,site in (ams,fra),!old". */
export function describeTarget(target: TargetPlan): string {
  const parts = Object.entries(target.labels).map(([k, v]) => `${k}=${v}`);
  if (target.agent) parts.unshift(`agent=${target.agent}`);
  for (const e of target.matchExpressions) {
    if (e.operator === 'In') parts.push(`${e.key} in (${e.values.join(',')})`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${e.values.join(',')})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else parts.push(`!${e.key}`);
  }
  return parts.join(',') || '(any agent)';
}

export interface Placement {
  /** step id -> agent name */
  agents: Record<string, string>;
  problems: Problem[];
}

export function place(steps: StepPlan[], fleet: FleetAgent[]): Placement {
  const agents: Record<string, string> = {};
  const problems: Problem[] = [];
  const load = new Map(fleet.map((a) => [a.name, a.runningSteps]));
  topoOrder(steps).forEach((step) => {
    if (step.agent && step.parent && step.target.strategy === 'all') {
      agents[step.id] = step.agent;
      return;
    }
    const candidates = fleet.filter((a) => matches(a, step.target) && a.state !== 'lost');
    const usable = candidates.filter((a) => !a.draining);
    if (usable.length === 0) {
      const known = [...new Set(fleet.flatMap((a) => Object.entries(a.labels).map(([k, v]) => `${k}=${v}`)))].sort();
      problems.push({
        path: `step "${step.id}".target`,
        line: 0,
        column: 0,
        severity: 'error',
        message:
          candidates.length > 0
            ? `every agent matching ${describeTarget(step.target)} is draining`
            : `no agent matches ${describeTarget(step.target)}; labels in the fleet: ${known.join(' ') || 'none (no agent registered)'}`,
      });
      return;
    }
    const local = new Set(step.needs.map((n) => agents[n]));
    const rank = (a: FleetAgent) =>
      [a.state === 'connected' ? 0 : 1, local.has(a.name) ? 0 : 1, load.get(a.name) ?? 0, Math.round(a.cpuPercent)] as const;
    usable.sort((a, b) => {
      const ra = rank(a);
      const rb = rank(b);
      for (let i = 0; i < ra.length; i++) if (ra[i] !== rb[i]) return ra[i] - rb[i];
      return a.name.localeCompare(b.name);
    });
    const chosen = usable[0];
    agents[step.id] = chosen.name;
    load.set(chosen.name, (load.get(chosen.name) ?? 0) + 1);
  });
  return { agents, problems };
}

/** Steps ordered so each comes after its needs (the compiler rejects cycles). */
export function topoOrder(steps: StepPlan[]): StepPlan[] {
  const done = new Set<string>();
  const out: StepPlan[] = [];
  let pending = steps;
  while (pending.length) {
    const ids = new Set(pending.map((s) => s.id));
    // Needs on groups (fan-out parents) are not units; they never block the order.
    const ready = pending.filter((s) => s.needs.every((n) => done.has(n) || !ids.has(n)));
    if (ready.length === 0) return [...out, ...pending];
    for (const s of ready) {
      out.push(s);
      done.add(s.id);
    }
    pending = pending.filter((s) => !done.has(s.id));
  }
  return out;
}
