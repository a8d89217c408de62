/**
 * Which agents and devices a target selects, shared by the compiler (which
 * warns about targets nothing matches and expands fan-outs) and placement.
 */
import type { TargetPlan } from './plan.js';

/** An agent as the compiler and placement see it, in the fleet snapshot taken when a run is compiled. */
export interface FleetAgent {
  name: string;
  labels: Record<string, string>;
  state: 'connected' | 'disconnected' | 'lost';
  draining: boolean;
  runningSteps: number;
  cpuPercent: number;
}

/** A registered network device, as the compiler and placement see it. */
export interface FleetDevice {
  name: string;
  host: string;
  port: number;
  user: string;
  /** A credential reference, resolved by the proxy agent (no secret is stored). */
  credential: string;
  /** Agents labelled proxy=<network> reach it. */
  network: string;
  labels: Record<string, string>;
  /** Sessions at once on the proxy agent. */
  maxSessions: number;
}

/** Whether an agent proxies for a network: label proxy=<network>, or proxy.<network>=true. */
export function proxiesFor(agent: Pick<FleetAgent, 'labels'>, network: string): boolean {
  return agent.labels.proxy === network || agent.labels[`proxy.${network}`] === 'true';
}

/** Whether a target selects an agent, or a device by its name and labels (with `agent: ''`). */
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
  if (target.device) parts.unshift(`device=${target.device}`);
  for (const e of target.matchExpressions) {
    if (e.operator === 'In') parts.push(`${e.key} in (${e.values.join(',')})`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${e.values.join(',')})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else parts.push(`!${e.key}`);
  }
  return parts.join(',') || '(any agent)';
}
