/** `drover schedules` output (sdk/cli/render/schedules.ts) and the "in 2h05m" formatter. */
import { describe, expect, it } from 'vitest';
import { formatIn, formatZoned } from '../../sdk/cli/format.js';
import { schedulesTable } from '../../sdk/cli/render/schedules.js';
import type { Schedule } from '../../sdk/schedules.js';

const NOW = Date.parse('2026-12-02T10:00:00Z');
const schedule = (over: Partial<Schedule>): Schedule => ({
  name: 'nightly',
  workflow: 'backup',
  workflowVersion: 3,
  cron: '0 2 * * *',
  timezone: 'Europe/Berlin',
  catchup: 'latest',
  paused: false,
  nextFireAt: new Date('2026-12-03T01:00:00Z'),
  lastFireAt: new Date('2026-12-02T01:00:00Z'),
  lastRunId: 'r-261202-010000-0a1b2c3d',
  lastMessage: '',
  params: { target: 'db' },
  ...over,
});

describe('schedules render', () => {
  it('schedules render - formatIn humanises the time to the next fire', () => {
    expect([0, NOW - 1, NOW + 42_000, NOW + 12 * 60_000, NOW + 3 * 3600_000 + 5 * 60_000, NOW + 2 * 86400_000 + 4 * 3600_000].map((t) => formatIn(t, NOW))).toEqual(['-', 'now', 'in 42s', 'in 12m', 'in 3h05m', 'in 2d04h']);
    expect(formatZoned(Date.parse('2026-12-03T01:00:00Z'), 'Europe/Berlin')).toBe('2026-12-03 02:00:00');
  });

  it('schedules render - the table shows next and last fire, the run or why there was none, and the state', () => {
    const out = schedulesTable(
      [schedule({}), schedule({ name: 'hourly', paused: true, nextFireAt: null, lastRunId: '', lastMessage: 'RUN_SKIPPED: run r-1 of backup is still running and the workflow has concurrency: skip; no new run was started', timezone: 'UTC' })],
      { wide: false, colour: false, now: NOW },
    );
    expect(out.endsWith('\n')).toBe(true);
    expect(out.trimEnd().split('\n').map((l) => l.split(/\s{2,}/))).toEqual([
      ['NAME', 'WORKFLOW', 'CRON', 'TIMEZONE', 'NEXT', 'LAST', 'LAST RUN', 'STATE'],
      ['nightly', 'backup@3', '0 2 * * *', 'Europe/Berlin', 'in 15h00m', '9h ago', 'r-261202-010000-0a1b2c3d', 'active'],
      ['hourly', 'backup@3', '0 2 * * *', 'UTC', '-', '9h ago', 'RUN_SKIPPED: run r-1 of backup is still running and the wor…', 'paused'],
    ]);
  });

  it('schedules render - wide adds the next fire in the schedule\'s zone, catchup, params and the message beside a run', () => {
    const out = schedulesTable([schedule({ lastMessage: '2 missed fires not started (catchup: latest)' })], { wide: true, colour: false, now: NOW });
    expect(out.split('\n')[0]).toMatch(/STATE\s+NEXT AT\s+CATCHUP\s+PARAMS\s+MESSAGE$/);
    expect(out.split('\n')[1]).toMatch(/active\s+2026-12-03 02:00:00\s+latest\s+target=db\s+2 missed fires not started \(catchup: latest\)$/);
  });

  it('schedules render - no schedules says how to declare one', () => {
    expect(schedulesTable([])).toBe('no schedules (a workflow declares them with `triggers: [{ cron: "0 2 * * *" }]`; see docs/schedules.md)\n');
  });
});
