import type { Attempt, Run, Step } from '../../types.js';
import { formatAgo, formatBytes, formatClock, formatCpu, formatSpan } from '../format.js';
import { paintState } from '../colour.js';
import { plainView, type View } from '../output.js';
import { renderTable } from '../table.js';
import { agentCell, exitCell } from './step-cells.js';

/** "deploy" for a run from a file, "deploy version 3" for one from the registry. */
export function workflowLabel(run: Run): string {
  return run.workflowVersion ? `${run.workflow} version ${run.workflowVersion}` : run.workflow;
}

/** "n/m": steps that succeeded of all steps (fan-out instances one by one), from the run's step counts. */
export function stepProgress(run: Run): string {
  return `${run.stepCounts.succeeded}/${run.stepCounts.total}`;
}

/** The PARAMS column is cut to this many characters (`-o json` has every param whole). */
export const PARAMS_WIDTH = 40;

/**
 * What a run was for, in a column: "role=sales username=bob", the shortest
 * first (so that more of them fit; long values such as paths and defaults
 * tend to say the least), then by key, cut with "…". Secret params arrive
 * from the control plane as "(secret)" (their values never leave it), and
 * show so.
 */
export function paramsSummary(params: Record<string, string>, width = PARAMS_WIDTH): string {
  const text = Object.keys(params)
    .map((k) => `${k}=${params[k].replace(/\s+/g, ' ')}`)
    .sort((a, b) => a.length - b.length || a.localeCompare(b))
    .join(' ');
  if (!text) return '-';
  return text.length > width ? `${text.slice(0, width - 1)}…` : text;
}

/** The `drover runs` table; wide adds the workflow version, plan hash and creation time. */
export function runsTable(runs: readonly Run[], view: View = plainView()): string {
  if (runs.length === 0) return 'no runs\n';
  const head = ['ID', 'WORKFLOW', 'STATUS', 'STEPS', 'PARAMS', 'STARTED', 'DURATION'];
  if (view.wide) head.push('VERSION', 'PLAN-HASH', 'CREATED');
  return renderTable(
    head,
    runs.map((r) => {
      const row = [
        r.id,
        r.workflow,
        paintState(r.status, view.colour),
        stepProgress(r),
        view.wide ? paramsSummary(r.params, Infinity) : paramsSummary(r.params),
        formatAgo(r.startedAt || r.createdAt, view.now),
        formatSpan(r.startedAt, r.endedAt, view.now),
      ];
      if (view.wide) row.push(r.workflowVersion ? String(r.workflowVersion) : '-', r.planHash || '-', new Date(r.createdAt).toISOString());
      return row;
    }),
  );
}

/** The steps table of `drover status` and of the summary after `run --follow`; wide adds each step's needs. */
export function stepsTable(steps: readonly Step[], view: View | number = plainView()): string {
  const v = typeof view === 'number' ? plainView(view) : view;
  if (steps.length === 0) return 'no steps\n';
  const head = ['STEP', 'AGENT', 'STATUS', 'ATTEMPT', 'EXIT', 'DURATION', 'CPU', 'PEAK-RSS'];
  if (v.wide) head.push('NEEDS');
  return renderTable(
    head,
    steps.map((s) => {
      const row: (string | number)[] = [
        s.isFinally ? `${s.id} (finally)` : s.id,
        agentCell(s, steps),
        s.reusedFrom ? `${paintState(s.status, v.colour)} (reused)` : paintState(s.status, v.colour),
        s.attempt || '-',
        exitCell(s),
        formatSpan(s.startedAt, s.endedAt, v.now),
        formatCpu(s.cpuSeconds),
        formatBytes(s.peakRssBytes),
      ];
      if (v.wide) row.push(s.needs.length ? s.needs.join(',') : '-');
      return row;
    }),
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
export function attemptsTable(steps: readonly Step[], view: View = plainView()): string {
  const rows = steps.filter(hasAttemptHistory).flatMap((s) =>
    s.attempts.map((a) => [
      s.id,
      a.number,
      a.agent,
      paintState(a.status, view.colour),
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
export function runHeader(run: Run, view: View | number = plainView()): string {
  const { now: nowMs, colour } = typeof view === 'number' ? plainView(view) : view;
  const params = Object.entries(run.params).map(([k, v]) => `${k}=${v}`).join(' ');
  const lines = [
    `Run:       ${run.id}`,
    `Workflow:  ${workflowLabel(run)}`,
    // Shown for runs something other than an API call started (a schedule, a webhook, ...).
    ...(run.trigger && run.trigger !== 'api' ? [`Trigger:   ${run.trigger}`] : []),
    `Status:    ${paintState(run.status, colour)}${run.message ? ` (${run.message})` : ''}`,
    `Created:   ${new Date(run.createdAt).toISOString()} (${formatAgo(run.createdAt, nowMs)})`,
    `Duration:  ${formatSpan(run.startedAt, run.endedAt, nowMs)}`,
    `Params:    ${params || '-'}`,
    `Plan hash: ${run.planHash || '-'}`,
  ];
  if (run.rerunOf) {
    const reused = run.steps.filter((s) => s.reusedFrom && s.kind !== 'group').length;
    lines.push(`Re-run of: ${run.rerunOf}${reused ? ` (${reused} step${reused === 1 ? '' : 's'} reused from it, not run again)` : ''}`);
  }
  return lines.join('\n') + '\n';
}
