import type { ScheduleInfoOut } from '../proto/index.js';
import type { Connection } from './connection.js';

/** A cron schedule: a registered workflow's cron trigger, and what its fires did. */
export interface Schedule {
  /** The trigger's `name`, else the workflow's (NAME-2, NAME-3 ... for further schedules of one workflow). */
  name: string;
  workflow: string;
  /** The workflow version each fire runs (the latest). */
  workflowVersion: number;
  /** 5 fields, or 6 with seconds first. */
  cron: string;
  /** IANA time zone the cron is read in. */
  timezone: string;
  /** What fires missed while the control plane was down do (docs/schedules.md). */
  catchup: 'none' | 'latest' | 'all';
  paused: boolean;
  /** The next fire; null while paused. */
  nextFireAt: Date | null;
  /** The latest fire acted on; null before the first. */
  lastFireAt: Date | null;
  /** The run the latest fire started ('' when it started none). */
  lastRunId: string;
  /** Why the latest fire started no run (RUN_SKIPPED: …), or which missed fires were not started; '' when all went well. */
  lastMessage: string;
  /** The params of each run. */
  params: Record<string, string>;
}

export interface ListSchedulesOptions {
  /** Only this workflow's schedules (WORKFLOW_NOT_FOUND when no workflow has the name). */
  workflow?: string;
}

const at = (ms: number) => (ms ? new Date(ms) : null);

function toSchedule(s: ScheduleInfoOut): Schedule {
  return {
    name: s.name,
    workflow: s.workflow,
    workflowVersion: s.workflowVersion,
    cron: s.cron,
    timezone: s.timezone,
    catchup: s.catchup as Schedule['catchup'],
    paused: s.paused,
    nextFireAt: at(Number(s.nextFireMs)),
    lastFireAt: at(Number(s.lastFireMs)),
    lastRunId: s.lastRunId,
    lastMessage: s.lastMessage,
    params: { ...s.params },
  };
}

/** Cron schedules declared by registered workflows (`triggers: [{ cron: … }]`, see docs/schedules.md). */
export class SchedulesApi {
  /** @internal */
  constructor(private readonly conn: Connection) {}

  /** Every schedule, sorted by name (viewer). */
  async list(options: ListSchedulesOptions = {}): Promise<Schedule[]> {
    const res = await this.conn.unary<{ schedules: ScheduleInfoOut[] }>((cb) => this.conn.triggers.listSchedules({ workflow: options.workflow ?? '' }, cb));
    return res.schedules.map(toSchedule);
  }

  /** Stops a schedule's fires until resumed; already paused is no change (operator). Rejects with ScheduleNotFoundError. */
  async pause(name: string): Promise<Schedule> {
    return toSchedule(await this.conn.unary<ScheduleInfoOut>((cb) => this.conn.triggers.pauseSchedule({ name }, cb)));
  }

  /** Fires again from now on; fires missed while paused are not caught up (operator). Rejects with ScheduleNotFoundError. */
  async resume(name: string): Promise<Schedule> {
    return toSchedule(await this.conn.unary<ScheduleInfoOut>((cb) => this.conn.triggers.resumeSchedule({ name }, cb)));
  }
}
