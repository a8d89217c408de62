/** TriggerService: list the cron schedules of registered workflows, pause and resume them (triggers/schedules.ts). */
import type { ScheduleInfo, TriggerServiceHandlers } from '../../proto/index.js';
import { NotFoundError } from '../errors.js';
import { callerTokenId } from '../security/access.js';
import type { Store } from '../store/store.js';
import type { Schedules, ScheduleView } from '../triggers/schedules.js';
import { toServiceError, unary } from './grpc-errors.js';

export function toScheduleInfo(v: ScheduleView): ScheduleInfo {
  return {
    name: v.trigger.name,
    workflow: v.workflow,
    workflowVersion: v.version,
    cron: v.trigger.cron,
    timezone: v.trigger.timezone,
    catchup: v.trigger.catchup,
    paused: v.record.paused,
    nextFireMs: v.nextMs,
    lastFireMs: v.record.lastFireMs,
    lastRunId: v.record.lastRunId,
    lastMessage: v.record.lastMessage,
    params: v.trigger.params,
  };
}

export function triggerService(schedules: Schedules, store: Store): TriggerServiceHandlers {
  const decide = (paused: boolean): TriggerServiceHandlers['PauseSchedule'] => (call, callback) => {
    const by = callerTokenId(call.metadata);
    (paused ? schedules.pause(call.request.name, by) : schedules.resume(call.request.name, by)).then(
      (v) => callback(null, toScheduleInfo(v)),
      (err: unknown) => callback(toServiceError(err) as never),
    );
  };
  return {
    ListSchedules: unary((req) => {
      if (req.workflow && store.workflowVersions(req.workflow).length === 0) {
        const names = store.workflowNames();
        throw new NotFoundError('WORKFLOW_NOT_FOUND', `no workflow named "${req.workflow}" in the registry`, names.length ? `registered workflows: ${names.join(', ')}` : 'add one with `drover workflow apply FILE`');
      }
      return { schedules: schedules.list(req.workflow || undefined).map(toScheduleInfo) };
    }),
    PauseSchedule: decide(true),
    ResumeSchedule: decide(false),
  };
}
