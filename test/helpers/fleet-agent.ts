import type { FleetAgent } from '../../common/workflow/model/target.js';

/** An agent as a fleet snapshot shows it: connected, not draining, idle, unless `extra` says otherwise. */
export const fleetAgent = (name: string, labels: Record<string, string>, extra: Partial<FleetAgent> = {}): FleetAgent => ({
  name,
  labels,
  state: 'connected',
  draining: false,
  runningSteps: 0,
  cpuPercent: 0,
  ...extra,
});
