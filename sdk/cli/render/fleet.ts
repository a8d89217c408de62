import type { Agent } from '../../types.js';
import { paint, paintState } from '../colour.js';
import { formatAgo, formatLabels, formatPercent } from '../format.js';
import { plainView, type View } from '../output.js';
import { renderTable } from '../table.js';

/** The `drover fleet` table; wide adds the connection's peer address, the agent's version and how long it has been connected. */
export function fleetTable(agents: readonly Agent[], view: View = plainView()): string {
  if (agents.length === 0) return 'no agents\n';
  const head = ['NAME', 'STATE', 'TRANSPORT', 'LABELS', 'CPU%', 'MEM%', 'DISK%', 'RUNNING', 'LAST-SEEN'];
  if (view.wide) head.push('PEER', 'VERSION', 'CONNECTED');
  return renderTable(
    head,
    agents.map((a) => {
      const row: (string | number)[] = [
        a.draining ? `${a.name} ${paint('yellow', '(draining)', view.colour)}` : a.name,
        paintState(a.state, view.colour),
        a.transport || '-',
        formatLabels(a.labels),
        formatPercent(a.heartbeat?.cpuPercent),
        formatPercent(a.heartbeat?.memoryPercent),
        formatPercent(a.heartbeat?.diskPercent),
        a.runningSteps,
        formatAgo(a.lastSeen, view.now),
      ];
      if (view.wide) row.push(a.peer || '-', a.facts?.agentVersion || '-', a.connectedSince ? formatAgo(a.connectedSince, view.now).replace(/ ago$/, '') : '-');
      return row;
    }),
  );
}
