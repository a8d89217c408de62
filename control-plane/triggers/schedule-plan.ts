/**
 * Which fires of a cron schedule are due, and when the next one is: pure, a
 * function of the trigger, its stored cursor and the clock (croner reads the
 * cron expression in the trigger's time zone, so DST gaps and repeats are
 * its: a local time that does not exist fires at the next one that does, one
 * that happens twice fires once).
 *
 * Fires after the cursor and at or before now are due. A due fire is on
 * time when it came after the control plane's previous check (`watchedSinceMs`,
 * the service checks at least once a minute); the others were missed (it
 * was down, stalled or suspended) and follow `catchup`:
 *  - none: missed fires are dropped; an on-time fire starts.
 *  - latest: the most recent due fire starts, on time or missed.
 *  - all: every missed fire starts, oldest first, at most MAX_CATCHUP (the
 *    most recent ones), then the on-time one.
 * When several fires became due since the previous check (a stalled event
 * loop), only the latest counts as on time, like a timer that fired late.
 */
import { Cron } from 'croner';
import type { CronTrigger } from '../../common/workflow/model/plan.js';

/** Missed fires `catchup: all` starts at most, after a downtime (the most recent ones; older ones are dropped and counted). */
export const MAX_CATCHUP = 100;

/** What a schedule's plan needs of its stored state. */
export interface ScheduleCursor {
  paused: boolean;
  /** Fires at or before this were dealt with (started, refused or dropped). */
  cursorMs: number;
}

export interface SchedulePlan {
  /** Fire times to start now, oldest first. */
  fires: number[];
  /** Due fires dropped (missed, or past the catch-up cap); `more` when there were more than counted. */
  dropped: number;
  more: boolean;
  /** The cursor to store: now when anything was due, else the one given. */
  cursorMs: number;
  /** The next fire after now; 0 when paused or never. */
  nextMs: number;
}

/** A croner job that never runs by itself: the service keeps the one timer. */
export function cronOf(t: Pick<CronTrigger, 'cron' | 'timezone'>): Cron {
  return new Cron(t.cron, { paused: true, timezone: t.timezone });
}

/** The next fire of `t` strictly after `afterMs`; 0 when there is none. */
export function nextFire(t: Pick<CronTrigger, 'cron' | 'timezone'>, afterMs: number, cron = cronOf(t)): number {
  return cron.nextRun(new Date(afterMs))?.getTime() ?? 0;
}

/**
 * The plan of one schedule at `now`. `watchedSinceMs`: the control plane's
 * previous check, or `now` when it has none (just started, or it stalled
 * past the check interval): then every due fire was missed.
 */
export function planSchedule(t: Pick<CronTrigger, 'cron' | 'timezone' | 'catchup'>, state: ScheduleCursor, now: number, watchedSinceMs: number): SchedulePlan {
  const cron = cronOf(t);
  if (state.paused) return { fires: [], dropped: 0, more: false, cursorMs: state.cursorMs, nextMs: 0 };
  const nextMs = nextFire(t, now, cron);
  // Newest first, the reference exclusive: +1 takes in a fire exactly at now. Two beyond the cap: the on-time one, and one to tell "more".
  const due = cron
    .previousRuns(MAX_CATCHUP + 2, new Date(now + 1))
    .map((d) => d.getTime())
    .filter((ms) => ms > state.cursorMs)
    .reverse();
  if (due.length === 0) return { fires: [], dropped: 0, more: false, cursorMs: state.cursorMs, nextMs };
  const capped = due.length === MAX_CATCHUP + 2;
  const latest = due[due.length - 1];
  const onTime = latest > watchedSinceMs ? latest : undefined;
  const missed = onTime === undefined ? due : due.slice(0, -1);
  let fires: number[];
  if (t.catchup === 'all') fires = [...missed.slice(-MAX_CATCHUP), ...(onTime === undefined ? [] : [onTime])];
  else if (t.catchup === 'latest') fires = [latest];
  else fires = onTime === undefined ? [] : [onTime];
  return { fires, dropped: due.length - fires.length, more: capped, cursorMs: now, nextMs };
}
