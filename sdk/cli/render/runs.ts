import type { Attempt, Run, Step } from '../../types.js';
import { formatAgo, formatBytes, formatClock, formatCpu, formatSpan } from '../format.js';
import { renderTable } from '../table.js';
import { agentCell, exitCell } from './step-cells.js';

const DONE: ReadonlySet<Step['status']> = new Set(['succeeded', 'failed', 'skipped', 'cancelled']);

/** "deploy" for a run from a file, "deploy version 3" for one from the registry. */
export function workflowLabel(run: Run): string {
  return run.workflowVersion ? `${run.workflow} version ${run.workflowVersion}` : run.workflow;
}

/** "n/m" steps that have finished, whatever their outcome. */
export function stepProgress(run: Run): string {
  return `${run.steps.filter((s) => DONE.has(s.status)).length}/${run.steps.length}`;
}

/** The `drover runs` table. */
export function runsTable(runs: readonly Run[], nowMs: number = Date.now()): string {
  if (runs.length === 0) return 'no runs\n';
  return renderTable(
    ['ID', 'WORKFLOW', 'STATUS', 'STEPS', 'STARTED', 'DURATION'],
    runs.map((r) => [r.id, r.workflow, r.status, stepProgress(r), formatAgo(r.startedAt || r.createdAt, nowMs), formatSpan(r.startedAt, r.endedAt, nowMs)]),
  );
}

/** The steps table of `drover status` and of the summary after `run --follow`. */
export function stepsTable(steps: readonly Step[], nowMs: number = Date.now()): string {
  if (steps.length === 0) return 'no steps\n';
  return renderTable(
    ['STEP', 'AGENT', 'STATUS', 'ATTEMPT', 'EXIT', 'DURATION', 'CPU', 'PEAK-RSS'],
    steps.map((s) => [
      s.isFinally ? `${s.id} (finally)` : s.id,
      agentCell(s, steps),
      s.status,
      s.attempt || '-',
      exitCell(s),
      formatSpan(s.startedAt, s.endedAt, nowMs),
      formatCpu(s.cpuSeconds),
      formatBytes(s.peakRssBytes),
    ]),
  );
}

/** Whether `drover status` lists a step's attempts: it had more than one, or one that no longer decides it. */
export function hasAttemptHistory(step: Step): boolean {
  return step.attempts.length > 1 || step.attempts.some((a) => a.superseded);
}

/**
 * The attempts table of `drover status`, for the steps with a history worth
 * showing (hasAttemptHistory); '' when none has one. `#` is the number
 * `drover logs --attempt` takes.
 */
export function attemptsTable(steps: readonly Step[]): string {
  const rows = steps.filter(hasAttemptHistory).flatMap((s) =>
    s.attempts.map((a) => [
      s.id,
      a.number,
      a.agent,
      a.status,
      a.status === 'succeeded' || a.status === 'failed' ? a.exitCode : '-',
      a.startedAt ? formatClock(a.startedAt) : '-',
      a.endedAt ? formatClock(a.endedAt) : '-',
      attemptNote(a) || '-',
    ]),
  );
  if (rows.length === 0) return '';
  return renderTable(['STEP', '#', 'AGENT', 'STATUS', 'EXIT', 'STARTED', 'ENDED', 'NOTE'], rows)
    .split('\n')
    .map((line) => (line ? `  ${line}` : line))
    .join('\n');
}

function attemptNote(a: Attempt): string {
  if (a.superseded) return `superseded: ${a.note}`;
  return a.note || (a.status === 'succeeded' ? '' : a.message);
}

/** Messages of steps that failed, were skipped or cancelled, one per line. */
export function stepMessages(steps: readonly Step[]): string {
  return steps
    .filter((s) => s.message && s.status !== 'succeeded')
    .map((s) => `  ${s.id}${s.agent ? ` on ${s.agent}` : ''}: ${s.message}\n`)
    .join('');
}

/** The header of `drover status`: id, workflow, status, times, params, plan hash. */
export function runHeader(run: Run, nowMs: number = Date.now()): string {
  const params = Object.entries(run.params).map(([k, v]) => `${k}=${v}`).join(' ');
  const lines = [
    `Run:       ${run.id}`,
    `Workflow:  ${workflowLabel(run)}`,
    `Status:    ${run.status}${run.message ? ` (${run.message})` : ''}`,
    `Created:   ${new Date(run.createdAt).toISOString()} (${formatAgo(run.createdAt, nowMs)})`,
    `Duration:  ${formatSpan(run.startedAt, run.endedAt, nowMs)}`,
    `Params:    ${params || '-'}`,
    `Plan hash: ${run.planHash || '-'}`,
  ];
  return lines.join('\n') + '\n';
}
