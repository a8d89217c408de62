/**
 * Where each step runs. Pure: a function of the plan and a fleet snapshot.
 * strategy "one": among matching agents prefer connected, not draining, then
 * an agent that already runs one of the step's needs (sequential steps stay on
 * one host and cost no round trip), then the fewest running steps, then the
 * lowest CPU from the latest heartbeat, then the name (deterministic ties).
 *
 * ssh steps run on a proxy agent for their device's network (label
 * proxy=<network>, or proxy.<network>=true for an agent that serves several).
 * Among those, an agent already chosen for the same device (in this run, or
 * by unfinished steps of other runs: `affinity`) comes first, so one agent
 * sees every session to a device and can hold it to its session limit; then
 * the same order as above.
 */
import type { Problem } from '../../errors.js';
import type { SshPlan, StepPlan } from '../model/plan.js';
import { describeTarget, matches, proxiesFor, type FleetAgent } from '../model/target.js';

/** What identifies a device for routing: its inventory name, or user@host:port for an inline host. */
export function deviceKey(ssh: SshPlan): string {
  return ssh.device || `${ssh.user}@${ssh.host}:${ssh.port}`;
}

export interface Placement {
  /** step id -> agent name */
  agents: Record<string, string>;
  problems: Problem[];
  /** Ids of the steps no usable agent takes, one per entry of `problems`, in the same order. */
  unplaced: string[];
}

/**
 * Places every step. `affinity` maps a device (deviceKey) to the agents that
 * run unfinished ssh steps to it in other runs; `placed` gives the agents of
 * steps placed before (a step waiting for capacity prefers its needs' agent).
 */
export function place(
  steps: StepPlan[],
  fleet: FleetAgent[],
  affinity: ReadonlyMap<string, ReadonlySet<string>> = new Map(),
  placed: Readonly<Record<string, string>> = {},
): Placement {
  const agents: Record<string, string> = {};
  const problems: Problem[] = [];
  const unplaced: string[] = [];
  const load = new Map(fleet.map((a) => [a.name, a.runningSteps]));
  const byDevice = new Map<string, Set<string>>();
  topoOrder(steps).forEach((step) => {
    // An approval gate runs on no agent (scheduler/approvals.ts opens it).
    if (step.kind === 'approval') {
      agents[step.id] = '';
      return;
    }
    if (step.agent && step.parent && step.target.strategy === 'all') {
      agents[step.id] = step.agent;
      return;
    }
    const ssh = step.kind === 'ssh' ? step.ssh : null;
    const candidates = fleet.filter((a) => (ssh ? proxiesFor(a, ssh.network) : matches(a, step.target)) && a.state !== 'lost');
    const usable = candidates.filter((a) => !a.draining);
    if (usable.length === 0) unplaced.push(step.id);
    if (ssh && usable.length === 0) {
      const proxies = fleet.filter((a) => a.labels.proxy !== undefined || Object.keys(a.labels).some((k) => k.startsWith('proxy.')));
      const seen = proxies.map((a) => `${a.name} (${Object.entries(a.labels).filter(([k]) => k === 'proxy' || k.startsWith('proxy.')).map(([k, v]) => `${k}=${v}`).join(',')})`);
      problems.push({
        path: `step "${step.id}".ssh`,
        line: 0,
        column: 0,
        severity: 'error',
        message:
          candidates.length > 0
            ? `every proxy agent for network "${ssh.network}" (device ${deviceKey(ssh)}) is draining`
            : `no proxy agent for network "${ssh.network}" (device ${deviceKey(ssh)}): start an agent that can reach it with --label proxy=${ssh.network}; ` +
              `proxy agents in the fleet: ${seen.join(' ') || 'none'}`,
      });
      return;
    }
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
    const local = new Set(step.needs.map((n) => agents[n] ?? placed[n]));
    const key = ssh ? deviceKey(ssh) : '';
    const sticky = new Set([...(byDevice.get(key) ?? []), ...(affinity.get(key) ?? [])]);
    const rank = (a: FleetAgent) =>
      [a.state === 'connected' ? 0 : 1, sticky.has(a.name) ? 0 : 1, local.has(a.name) ? 0 : 1, load.get(a.name) ?? 0, Math.round(a.cpuPercent)] as const;
    usable.sort((a, b) => {
      const ra = rank(a);
      const rb = rank(b);
      for (let i = 0; i < ra.length; i++) if (ra[i] !== rb[i]) return ra[i] - rb[i];
      return a.name.localeCompare(b.name);
    });
    const chosen = usable[0];
    agents[step.id] = chosen.name;
    load.set(chosen.name, (load.get(chosen.name) ?? 0) + 1);
    if (ssh) byDevice.set(key, new Set([...(byDevice.get(key) ?? []), chosen.name]));
  });
  return { agents, problems, unplaced };
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
