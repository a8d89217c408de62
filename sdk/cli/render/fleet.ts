import type { Agent } from '../../types.js';
import { formatAgo, formatLabels, formatPercent } from '../format.js';
import { renderTable } from '../table.js';

/** The `drover fleet` table. */
export function fleetTable(agents: readonly Agent[], nowMs: number = Date.now()): string {
  if (agents.length === 0) return 'no agents\n';
  return renderTable(
    ['NAME', 'STATE', 'TRANSPORT', 'LABELS', 'CPU%', 'MEM%', 'DISK%', 'RUNNING', 'LAST-SEEN'],
    agents.map((a) => [
      a.draining ? `${a.name} (draining)` : a.name,
      a.state,
      a.transport || '-',
      formatLabels(a.labels),
      formatPercent(a.heartbeat?.cpuPercent),
      formatPercent(a.heartbeat?.memoryPercent),
      formatPercent(a.heartbeat?.diskPercent),
      a.runningSteps,
      formatAgo(a.lastSeen, nowMs),
    ]),
  );
}
