/**
 * The schedule service: starts runs of registered workflows at the fire
 * times of their cron triggers (schedule-plan.ts decides which are due).
 *
 * One timer, armed to the earliest next fire but never further than
 * REPLAN_MS ahead, so a wall-clock jump or a DST change is noticed within a
 * minute. Each check plans every schedule and starts its due fires one after
 * the other through Runs.submit, with trigger "schedule:NAME" and the
 * idempotency key "schedule:NAME:<fire ISO>": a fire is never started twice,
 * even when a crash lost the schedule's record but not the run. The
 * schedule's record (cursor, last fire) is put before the submit, so it is
 * written in the same flush as the run. A refusal (RUN_SKIPPED under
 * `concurrency: skip`, NO_MATCHING_AGENT, bad params, a failing disk) is
 * the schedule's last message and a warning in the log, never an error of
 * the control plane. Overlapping fires follow the workflow's concurrency,
 * as any submit does (allow, queue, skip).
 *
 * The declared schedules are read again when a workflow version is applied:
 * a new one starts from then on (no catch-up), one whose cron or time zone
 * changed starts afresh from then on, one that disappeared stops and its
 * record is dropped.
 */
import type { ApiErrorCode } from '../../common/errors.js';
import { ApiError, NotFoundError } from '../errors.js';
import type { Logger } from '../log.js';
import type { CronTrigger } from '../../common/workflow/model/plan.js';
import type { RunRecord } from '../model/run.js';
import type { SubmitRequest } from '../runs.js';
import type { AuditEvent } from '../security/audit.js';
import { flushOrUndo } from '../store-guard.js';
import type { ScheduleRecord, Store } from '../store/store.js';
import type { Workflows } from '../workflows.js';
import { nextFire, planSchedule } from './schedule-plan.js';

/** The timer is never armed further ahead than this: a clock that jumped is re-read within it. */
export const REPLAN_MS = 60_000;
/**
 * A check later than this after the previous one means the process was
 * stalled or suspended: fires since then count as missed (catchup decides),
 * not as on time. Ordinary checks are at most REPLAN_MS apart.
 */
export const MAX_CHECK_GAP_MS = REPLAN_MS + 30_000;

/** A schedule's last message is cut to this many characters (the log has the whole error). */
const MAX_MESSAGE = 2000;
/** How many schedule names a SCHEDULE_NOT_FOUND message lists (`drover schedules` has them all). */
const NAMES_SHOWN = 20;

/** A declared schedule: the trigger, and the workflow version whose latest it is. */
export interface DeclaredSchedule {
  trigger: CronTrigger;
  workflow: string;
  version: number;
}

/** A schedule as the API shows it. */
export interface ScheduleView extends DeclaredSchedule {
  record: ScheduleRecord;
  /** The next fire; 0 when paused. */
  nextMs: number;
}

/** The timer the service arms (tests pass one they drive). */
export interface ScheduleTimers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const realTimers: ScheduleTimers = {
  set: (fn, ms) => setTimeout(fn, ms).unref(),
  clear: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface SchedulesOptions {
  store: Store;
  workflows: Workflows;
  /** Runs.submit, bound. */
  submit: (req: SubmitRequest) => Promise<RunRecord>;
  log: Logger;
  now: () => number;
  /** Each fire is recorded here (actor system "schedule:NAME"). */
  audit?: { record(e: AuditEvent): void };
  timers?: ScheduleTimers;
}

const spec = (t: CronTrigger) => `${t.cron}|${t.timezone}`;
const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

export class Schedules {
  private declared = new Map<string, DeclaredSchedule>();
  private watchedSinceMs: number | undefined;
  private timer: unknown;
  private chain: Promise<void> = Promise.resolve();
  private stopped = true;
  private offApplied: (() => void) | undefined;
  private readonly timers: ScheduleTimers;

  constructor(private readonly o: SchedulesOptions) {
    this.timers = o.timers ?? realTimers;
  }

  /** Reads the declared schedules, checks them (catch-up after a restart) and keeps checking until stop(). */
  start(): Promise<void> {
    this.stopped = false;
    this.offApplied = this.o.workflows.applied.subscribe(() => {
      this.refresh();
      void this.check();
    });
    this.refresh();
    return this.check();
  }

  stop(): void {
    this.stopped = true;
    this.offApplied?.();
    if (this.timer !== undefined) this.timers.clear(this.timer);
    this.timer = undefined;
  }

  /** Schedules sorted by name, of one workflow when given. */
  list(workflow?: string): ScheduleView[] {
    const now = this.o.now();
    return [...this.declared.values()]
      .filter((d) => !workflow || d.workflow === workflow)
      .sort((a, b) => a.trigger.name.localeCompare(b.trigger.name))
      .map((d) => this.view(d, now));
  }

  /** Stops a schedule's fires until resume(); already paused is no change. Throws SCHEDULE_NOT_FOUND. */
  async pause(name: string, by: string): Promise<ScheduleView> {
    return this.setPaused(name, true, by);
  }

  /** Fires again from now on: fires missed while paused are not caught up. Throws SCHEDULE_NOT_FOUND. */
  async resume(name: string, by: string): Promise<ScheduleView> {
    return this.setPaused(name, false, by);
  }

  /** Plans every schedule now and starts what is due; checks run one at a time. */
  check(): Promise<void> {
    const next = this.chain.then(() => this.checkNow());
    this.chain = next.catch((err: unknown) => this.o.log.error({ err }, 'schedule check failed; the next one tries again'));
    return this.chain;
  }

  /** Reads the declared cron triggers; makes records for new or changed schedules, drops those of removed ones. */
  refresh(): void {
    const now = this.o.now();
    const declared = new Map<string, DeclaredSchedule>();
    for (const w of this.o.workflows.triggers()) {
      for (const t of w.triggers) if (t.kind === 'cron') declared.set(t.name, { trigger: t, workflow: w.workflow, version: w.version });
    }
    for (const [name, d] of declared) {
      const rec = this.o.store.getSchedule(name);
      if (rec && rec.workflow === d.workflow && rec.spec === spec(d.trigger)) continue;
      // First sight, or another cron, zone or workflow: from now on, no catch-up. A pause is kept.
      // Changed in place: a check starting fires holds the record.
      const fresh = { workflow: d.workflow, spec: spec(d.trigger), cursorMs: now };
      if (rec) this.o.store.putSchedule(Object.assign(rec, fresh));
      else this.o.store.putSchedule({ name, ...fresh, paused: false, lastFireMs: 0, lastRunId: '', lastMessage: '', changedBy: '', changedMs: 0 });
      if (!this.declared.has(name)) this.o.log.info({ schedule: name, workflow: d.workflow, cron: d.trigger.cron, timezone: d.trigger.timezone }, 'schedule declared');
    }
    for (const rec of this.o.store.listSchedules()) {
      if (declared.has(rec.name)) continue;
      this.o.store.deleteSchedule(rec.name);
      this.o.log.info({ schedule: rec.name, workflow: rec.workflow }, 'schedule removed from its workflow; it fires no more');
    }
    this.declared = declared;
  }

  private view(d: DeclaredSchedule, now: number): ScheduleView {
    const record = this.o.store.getSchedule(d.trigger.name)!;
    return { ...d, record, nextMs: record.paused ? 0 : nextFire(d.trigger, now) };
  }

  private async setPaused(name: string, paused: boolean, by: string): Promise<ScheduleView> {
    const d = this.declared.get(name);
    if (!d) {
      const names = [...this.declared.keys()].sort();
      const shown = names.slice(0, NAMES_SHOWN).join(', ') + (names.length > NAMES_SHOWN ? ` and ${names.length - NAMES_SHOWN} more` : '');
      throw new NotFoundError(
        'SCHEDULE_NOT_FOUND',
        `no schedule named "${name.slice(0, 200)}"${names.length ? `; schedules: ${shown}` : ''}`,
        names.length ? 'list them with `drover schedules`' : 'no registered workflow declares a cron trigger: add `triggers: [{ cron: "0 2 * * *" }]` to one and `drover workflow apply` it',
      );
    }
    const rec = this.o.store.getSchedule(name)!;
    if (rec.paused === paused) return this.view(d, this.o.now());
    const before = { ...rec };
    const now = this.o.now();
    Object.assign(rec, { paused, changedBy: by, changedMs: now }, paused ? {} : { cursorMs: now });
    this.o.store.putSchedule(rec);
    await flushOrUndo(this.o.store, `schedule ${name} was not ${paused ? 'paused' : 'resumed'}`, () => this.o.store.putSchedule(Object.assign(rec, before)));
    this.o.log.info({ schedule: name, workflow: d.workflow, by }, paused ? 'schedule paused' : 'schedule resumed');
    void this.check();
    return this.view(d, this.o.now());
  }

  private async checkNow(): Promise<void> {
    if (this.stopped) return;
    const now = this.o.now();
    const prev = this.watchedSinceMs;
    const watchedSince = prev !== undefined && now >= prev && now - prev <= MAX_CHECK_GAP_MS ? prev : now;
    let wrote = false;
    for (const d of [...this.declared.values()].sort((a, b) => a.trigger.name.localeCompare(b.trigger.name))) {
      const rec = this.o.store.getSchedule(d.trigger.name);
      if (!rec) continue;
      const plan = planSchedule(d.trigger, rec, now, watchedSince);
      if (plan.fires.length === 0 && plan.dropped === 0) continue;
      wrote = true;
      const note = plan.dropped
        ? `${plan.more ? 'more than ' : ''}${plural(plan.dropped, 'missed fire')} not started (catchup: ${d.trigger.catchup})`
        : '';
      if (note) this.o.log.warn({ schedule: d.trigger.name, workflow: d.workflow, dropped: plan.dropped, more: plan.more, catchup: d.trigger.catchup }, `schedule ${d.trigger.name}: ${note}`);
      let fired = 0;
      for (const fire of plan.fires) {
        // Paused, stopped, removed or changed while an earlier fire was being started. A new version of the same schedule fires that version.
        const cur = this.declared.get(d.trigger.name);
        if (this.stopped || rec.paused || !cur || !this.same(cur, d)) break;
        await this.fire(cur, rec, fire, note);
        fired++;
      }
      if (!this.declared.has(d.trigger.name)) continue;
      if (fired === 0 && note) rec.lastMessage = note;
      rec.cursorMs = Math.max(rec.cursorMs, plan.cursorMs);
      this.o.store.putSchedule(rec);
    }
    this.watchedSinceMs = now;
    if (wrote) await this.o.store.flush().catch((err: unknown) => this.o.log.warn({ err: (err as Error).message }, 'schedule state not on disk yet; the store writes it once it can'));
    this.arm();
  }

  /** Starts one fire; its record is put first, so the run's flush writes both. */
  private async fire(d: DeclaredSchedule, rec: ScheduleRecord, fireMs: number, note: string): Promise<void> {
    const name = d.trigger.name;
    const at = new Date(fireMs).toISOString();
    Object.assign(rec, { cursorMs: fireMs, lastFireMs: fireMs });
    this.o.store.putSchedule(rec);
    let result: ApiErrorCode | 'ok' = 'ok';
    try {
      const run = await this.o.submit({
        source: '',
        filename: '',
        workflowRef: `${d.workflow}@${d.version}`,
        params: d.trigger.params,
        trigger: `schedule:${name}`,
        idempotencyKey: `schedule:${name}:${at}`,
      });
      Object.assign(rec, { lastRunId: run.id, lastMessage: note });
      this.o.log.info({ schedule: name, workflow: d.workflow, version: d.version, fire: at, run: run.id, status: run.status }, 'schedule fired: run started');
      this.o.audit?.record({ actor: { kind: 'system', id: `schedule:${name}` }, action: 'schedule.fire', target: run.id, result, detail: { workflow: d.workflow, fire: at } });
    } catch (err) {
      const e = err instanceof ApiError ? err : undefined;
      result = e?.code ?? 'INTERNAL';
      const why = `${result}: ${(err as Error).message}`;
      Object.assign(rec, { lastRunId: '', lastMessage: (note ? `${why}; ${note}` : why).slice(0, MAX_MESSAGE) });
      if (e) this.o.log.warn({ schedule: name, workflow: d.workflow, fire: at, code: e.code, err: e.message }, 'schedule fired: no run started');
      else this.o.log.error({ schedule: name, workflow: d.workflow, fire: at, err }, 'schedule fired: no run started (internal error)');
      this.o.audit?.record({ actor: { kind: 'system', id: `schedule:${name}` }, action: 'schedule.fire', target: d.workflow, result, detail: { workflow: d.workflow, fire: at, message: (err as Error).message.slice(0, 500) } });
    }
    // Not when its workflow dropped it meanwhile: the record is gone for good.
    if (this.declared.has(name)) this.o.store.putSchedule(rec);
  }

  private same(a: DeclaredSchedule, b: DeclaredSchedule): boolean {
    return a.workflow === b.workflow && spec(a.trigger) === spec(b.trigger);
  }

  private arm(): void {
    if (this.stopped) return;
    if (this.timer !== undefined) this.timers.clear(this.timer);
    const now = this.o.now();
    let next = now + REPLAN_MS;
    for (const d of this.declared.values()) {
      if (this.o.store.getSchedule(d.trigger.name)?.paused) continue;
      const at = nextFire(d.trigger, now);
      if (at && at < next) next = at;
    }
    this.timer = this.timers.set(() => {
      this.timer = undefined;
      void this.check();
    }, Math.max(1, next - now));
  }
}
