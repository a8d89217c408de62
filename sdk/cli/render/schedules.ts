import type { Schedule } from '../../schedules.js';
import { paint } from '../colour.js';
import { formatAgo, formatIn, formatZoned } from '../format.js';
import { plainView, type View } from '../output.js';
import { renderTable } from '../table.js';
import { paramsSummary } from './runs.js';

/** The LAST RUN column is cut to this many characters when it holds a message (`-o wide` has it whole). */
export const MESSAGE_WIDTH = 60;

const cut = (text: string, width: number) => (text.length > width ? `${text.slice(0, width - 1)}…` : text);

/** The run the last fire started, else why it started none. */
function lastRunCell(s: Schedule, wide: boolean): string {
  if (s.lastRunId) return s.lastRunId;
  return s.lastMessage ? (wide ? s.lastMessage : cut(s.lastMessage, MESSAGE_WIDTH)) : '-';
}

/** `drover schedules`: one row a schedule; wide adds the next fire's wall-clock time in the schedule's zone, catchup, params and the last message. */
export function schedulesTable(schedules: readonly Schedule[], view: View = plainView()): string {
  if (!schedules.length) return 'no schedules (a workflow declares them with `triggers: [{ cron: "0 2 * * *" }]`; see docs/schedules.md)\n';
  const head = ['NAME', 'WORKFLOW', 'CRON', 'TIMEZONE', 'NEXT', 'LAST', 'LAST RUN', 'STATE'];
  if (view.wide) head.push('NEXT AT', 'CATCHUP', 'PARAMS', 'MESSAGE');
  const rows = schedules.map((s) => {
    const row = [
      s.name,
      `${s.workflow}@${s.workflowVersion}`,
      s.cron,
      s.timezone,
      s.paused ? '-' : formatIn(s.nextFireAt?.getTime() ?? 0, view.now),
      formatAgo(s.lastFireAt?.getTime() ?? 0, view.now),
      lastRunCell(s, view.wide),
      s.paused ? paint('yellow', 'paused', view.colour) : 'active',
    ];
    if (view.wide) row.push(formatZoned(s.nextFireAt?.getTime() ?? 0, s.timezone), s.catchup, paramsSummary(s.params), s.lastRunId && s.lastMessage ? s.lastMessage : '-');
    return row;
  });
  return renderTable(head, rows);
}
