/** The pure schedule plan (control-plane/triggers/schedule-plan.ts) with a fake clock: due fires, catch-up, DST, cap, pause. */
import { describe, expect, it } from 'vitest';
import { MAX_CATCHUP, nextFire, planSchedule } from '../../control-plane/triggers/schedule-plan.js';

const ms = (iso: string) => Date.parse(iso);
const iso = (list: number[]) => list.map((t) => new Date(t).toISOString());
const hourly = { cron: '0 * * * *', timezone: 'UTC' };

describe('schedule plan', () => {
  it('schedule plan - a fire that came since the previous check starts, whatever the catchup', () => {
    for (const catchup of ['none', 'latest', 'all'] as const) {
      const p = planSchedule({ ...hourly, catchup }, { paused: false, cursorMs: ms('2026-12-02T09:00:00Z') }, ms('2026-12-02T10:00:00.004Z'), ms('2026-12-02T09:59:01Z'));
      expect(iso(p.fires), catchup).toEqual(['2026-12-02T10:00:00.000Z']);
      expect(p).toMatchObject({ dropped: 0, more: false, cursorMs: ms('2026-12-02T10:00:00.004Z'), nextMs: ms('2026-12-02T11:00:00Z') });
    }
  });

  it('schedule plan - nothing due leaves the cursor where it was and says the next fire', () => {
    const p = planSchedule({ ...hourly, catchup: 'all' }, { paused: false, cursorMs: ms('2026-12-02T10:00:00Z') }, ms('2026-12-02T10:30:00Z'), ms('2026-12-02T10:29:00Z'));
    expect(p).toEqual({ fires: [], dropped: 0, more: false, cursorMs: ms('2026-12-02T10:00:00Z'), nextMs: ms('2026-12-02T11:00:00Z') });
  });

  // Down from 06:30 to 10:20: the fires at 07, 08, 09 and 10 were missed (the first check after a start has no previous one).
  const down = { paused: false, cursorMs: ms('2026-12-02T06:00:00Z') };
  const back = ms('2026-12-02T10:20:00Z');
  it('schedule plan - catchup none drops every fire missed during a downtime and counts them', () => {
    expect(planSchedule({ ...hourly, catchup: 'none' }, down, back, back)).toEqual({ fires: [], dropped: 4, more: false, cursorMs: back, nextMs: ms('2026-12-02T11:00:00Z') });
  });
  it('schedule plan - catchup latest starts only the most recent missed fire', () => {
    const p = planSchedule({ ...hourly, catchup: 'latest' }, down, back, back);
    expect(iso(p.fires)).toEqual(['2026-12-02T10:00:00.000Z']);
    expect(p.dropped).toBe(3);
  });
  it('schedule plan - catchup all starts every missed fire, oldest first', () => {
    const p = planSchedule({ ...hourly, catchup: 'all' }, down, back, back);
    expect(iso(p.fires)).toEqual(['2026-12-02T07:00:00.000Z', '2026-12-02T08:00:00.000Z', '2026-12-02T09:00:00.000Z', '2026-12-02T10:00:00.000Z']);
    expect(p.dropped).toBe(0);
  });

  it(`schedule plan - catchup all after a long downtime starts the ${MAX_CATCHUP} most recent missed fires and says there were more`, () => {
    const everySecond = { cron: '* * * * * *', timezone: 'UTC', catchup: 'all' as const };
    const now = ms('2026-12-02T12:00:00.500Z');
    const p = planSchedule(everySecond, { paused: false, cursorMs: ms('2026-12-02T11:00:00Z') }, now, now);
    expect(p.fires).toHaveLength(MAX_CATCHUP);
    expect(iso([p.fires[0], p.fires[p.fires.length - 1]])).toEqual(['2026-12-02T11:58:21.000Z', '2026-12-02T12:00:00.000Z']);
    expect(p.fires).toEqual([...p.fires].sort((a, b) => a - b));
    expect(p.more).toBe(true);
    expect(p.dropped).toBe(2);
  });

  it('schedule plan - several fires due since the previous check (a stall): the latest is on time, the others follow catchup', () => {
    const twoSec = { cron: '*/2 * * * * *', timezone: 'UTC' };
    const cursor = { paused: false, cursorMs: ms('2026-12-02T10:00:00Z') };
    const now = ms('2026-12-02T10:00:06.1Z');
    const since = ms('2026-12-02T10:00:00.2Z');
    expect(iso(planSchedule({ ...twoSec, catchup: 'none' }, cursor, now, since).fires)).toEqual(['2026-12-02T10:00:06.000Z']);
    expect(planSchedule({ ...twoSec, catchup: 'none' }, cursor, now, since).dropped).toBe(2);
    expect(iso(planSchedule({ ...twoSec, catchup: 'all' }, cursor, now, since).fires)).toEqual(['2026-12-02T10:00:02.000Z', '2026-12-02T10:00:04.000Z', '2026-12-02T10:00:06.000Z']);
  });

  it('schedule plan - a paused schedule has no fires and no next fire, and keeps its cursor', () => {
    expect(planSchedule({ ...hourly, catchup: 'all' }, { paused: true, cursorMs: down.cursorMs }, back, back)).toEqual({ fires: [], dropped: 0, more: false, cursorMs: down.cursorMs, nextMs: 0 });
  });

  it('schedule plan - resumed (cursor moved to the resume time), fires missed while paused are not caught up', () => {
    const resumedAt = ms('2026-12-02T10:15:00Z');
    const p = planSchedule({ ...hourly, catchup: 'all' }, { paused: false, cursorMs: resumedAt }, back, back);
    expect(p).toEqual({ fires: [], dropped: 0, more: false, cursorMs: resumedAt, nextMs: ms('2026-12-02T11:00:00Z') });
  });

  it('schedule plan - Europe/Berlin spring forward: 02:30 does not exist on 29 March and fires once, at 03:00 CEST', () => {
    const t = { cron: '30 2 * * *', timezone: 'Europe/Berlin', catchup: 'all' as const };
    const fires: number[] = [];
    for (let at = ms('2026-03-27T12:00:00Z'), i = 0; i < 4; i++) fires.push((at = nextFire(t, at)));
    expect(iso(fires)).toEqual(['2026-03-28T01:30:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z', '2026-03-31T00:30:00.000Z']);
    // Down over the gap: the catch-up sees the same one fire for the 29th.
    const p = planSchedule(t, { paused: false, cursorMs: ms('2026-03-28T12:00:00Z') }, ms('2026-03-29T09:00:00Z'), ms('2026-03-29T09:00:00Z'));
    expect(iso(p.fires)).toEqual(['2026-03-29T01:00:00.000Z']);
  });

  it('schedule plan - Europe/Berlin fall back: 02:30 happens twice on 25 October and fires once; an hourly cron fires every real hour', () => {
    const daily = { cron: '30 2 * * *', timezone: 'Europe/Berlin', catchup: 'all' as const };
    const p = planSchedule(daily, { paused: false, cursorMs: ms('2026-10-24T12:00:00Z') }, ms('2026-10-25T06:00:00Z'), ms('2026-10-25T06:00:00Z'));
    expect(iso(p.fires)).toEqual(['2026-10-25T00:30:00.000Z']);
    const h = planSchedule({ cron: '0 * * * *', timezone: 'Europe/Berlin', catchup: 'all' }, { paused: false, cursorMs: ms('2026-10-24T23:30:00Z') }, ms('2026-10-25T02:30:00Z'), ms('2026-10-25T02:30:00Z'));
    // 02:00 CEST, 02:00 CET, 03:00 CET: three fires in three real hours.
    expect(iso(h.fires)).toEqual(['2026-10-25T00:00:00.000Z', '2026-10-25T01:00:00.000Z', '2026-10-25T02:00:00.000Z']);
  });

  it('schedule plan - a cron with seconds (6 fields) fires on its seconds', () => {
    const t = { cron: '*/2 * * * * *', timezone: 'UTC' };
    expect(iso([nextFire(t, ms('2026-12-02T10:00:01.5Z')), nextFire(t, ms('2026-12-02T10:00:02Z'))])).toEqual(['2026-12-02T10:00:02.000Z', '2026-12-02T10:00:04.000Z']);
  });
});
