import type { Device } from '../../types.js';
import { formatAgo, formatLabels } from '../format.js';
import { cli } from '../invocation.js';
import { plainView, type View } from '../output.js';
import { renderTable } from '../table.js';

/** The `drover device list` table; wide adds when each device was registered. */
export function devicesTable(devices: readonly Device[], view: View = plainView()): string {
  if (devices.length === 0) return `no devices registered; add one with: ${cli()} device add NAME --host HOST --user USER --credential REF\n`;
  return renderTable(
    ['NAME', 'ADDRESS', 'USER', 'CREDENTIAL', 'NETWORK', 'SESSIONS', 'LABELS', 'PROXIES', ...(view.wide ? ['REGISTERED'] : [])],
    devices.map((d) => [
      d.name,
      `${d.host}:${d.port}`,
      d.user,
      d.credential,
      d.network,
      d.maxSessions,
      formatLabels(d.labels),
      d.proxies.length ? d.proxies.join(',') : `none (start an agent with --label proxy=${d.network})`,
      ...(view.wide ? [formatAgo(d.createdAt, view.now)] : []),
    ]),
  );
}

/** What `drover device add` says. */
export function deviceAddedLine(d: Device, replaced: boolean): string {
  const via = d.proxies.length
    ? `proxied by ${d.proxies.join(', ')}`
    : `no agent proxies for network ${d.network} yet: start one with --label proxy=${d.network} and --credential ${d.credential}=FILE`;
  return `device ${d.name} ${replaced ? 'registered (replacing any earlier one)' : 'registered'}: ${d.user}@${d.host}:${d.port}, network ${d.network}; ${via}\n`;
}
