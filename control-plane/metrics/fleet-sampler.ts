/** One sample of the fleet for the stored history the fleet-utilisation metric is computed from (docs/metrics.md). */
import type { LiveAgent } from '../fleet.js';
import type { FleetSample } from '../store/store.js';

/**
 * How often the control plane records a fleet sample (`--fleet-sample-interval-ms`).
 * Agents heartbeat every 5 s by default; a sample every 15 s keeps a week's
 * history at about 40 000 lines (a few MB) while a run of a minute still
 * spans several samples. A run shorter than this may span none: its fleet
 * figures are then 0 (see docs/metrics.md).
 */
export const FLEET_SAMPLE_INTERVAL_MS = 15_000;

/** Mean CPU and memory % over the connected agents that have sent a heartbeat, and the agent counts, at `t`. */
export function fleetSample(agents: readonly LiveAgent[], t: number): FleetSample {
  const reporting = agents.filter((a) => a.state === 'connected' && a.heartbeat);
  const mean = (f: (a: LiveAgent) => number) => (reporting.length ? reporting.reduce((sum, a) => sum + f(a), 0) / reporting.length : 0);
  return {
    t,
    cpuPercent: round2(mean((a) => a.heartbeat!.cpuPercent)),
    memoryPercent: round2(mean((a) => a.heartbeat!.memoryPercent)),
    connected: agents.filter((a) => a.state === 'connected').length,
    agents: agents.length,
  };
}

const round2 = (x: number) => Math.round(x * 100) / 100;
