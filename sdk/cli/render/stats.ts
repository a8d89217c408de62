/** `drover stats`: the metrics table, and the JSON/YAML document with raw numbers and ISO times. */
import type { Stats, WorkflowStats } from '../../types.js';
import { formatBytes, formatCpu, formatDuration } from '../format.js';
import { renderTable } from '../table.js';

const BARS = '▁▂▃▄▅▆▇█';

/** The server's rate with what it divides, "85.0% (17/20)"; "-" when there was nothing to divide. */
function rate(value: number, n: number, d: number): string {
  return d ? `${(value * 100).toFixed(1)}% (${n}/${d})` : '-';
}

/** Runs ended per slice as bars, scaled to the busiest slice of the row; "·" for an empty slice. */
export function sparkline(counts: readonly number[]): string {
  const max = Math.max(0, ...counts);
  return counts.map((c) => (c === 0 ? '·' : BARS[Math.round((c / max) * (BARS.length - 1))])).join('');
}

/** "7d", "24h", "90m", "30s" as `--since` spells it: the largest whole unit, days only from two of them. */
export function describeWindow(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms % size === 0 && (unit !== 'd' || ms >= 2 * size)) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

function row(name: string, w: WorkflowStats): (string | number)[] {
  const ended = w.runsEnded;
  return [
    name,
    ended,
    w.runsActive,
    rate(w.completionRate, w.runsSucceeded, ended),
    rate(w.runErrorRate, w.runsFailed, ended),
    w.runsCancelled,
    rate(w.attemptErrorRate, w.attemptsFailed, w.attempts),
    ended ? formatDuration(w.cycleP50Ms) : '-',
    ended ? formatDuration(w.cycleP95Ms) : '-',
    ended ? formatDuration(w.cycleMaxMs) : '-',
    formatCpu(w.cpuSeconds),
    formatBytes(w.peakRssBytes),
    w.fleetCpuPercent || w.fleetMemoryPercent ? `${w.fleetCpuPercent.toFixed(1)}% / ${w.fleetMemoryPercent.toFixed(1)}%` : '-',
    sparkline(w.trend.map((b) => b.ended)),
  ];
}

/** The table: a row per workflow and an "(all)" row, under a line naming the window. */
export function statsTable(s: Stats): string {
  const span = s.to - s.from;
  const slices = s.overall.trend.length;
  const head = `window: the last ${describeWindow(span)} (${new Date(s.from).toISOString()} to ${new Date(s.to).toISOString()}); trend: runs ended in ${slices} slice${slices === 1 ? '' : 's'} of ${describeWindow(Math.round(span / Math.max(1, slices)))}\n`;
  if (!s.overall.runsEnded && !s.overall.runsActive) return `${head}no run ended in the window and none is active\n`;
  const rows = s.workflows.map((w) => row(w.workflow, w));
  rows.push(row('(all)', s.overall));
  return (
    head +
    renderTable(['WORKFLOW', 'ENDED', 'ACTIVE', 'COMPLETED', 'FAILED', 'CANCELLED', 'ATTEMPTS FAILED', 'CYCLE P50', 'P95', 'MAX', 'CPU', 'PEAK MEM', 'FLEET CPU / MEM', 'TREND'], rows)
  );
}

/** The document -o json and -o yaml print: every figure as its raw number, times as ISO text beside their ms. */
export function statsDocument(s: Stats) {
  const iso = (ms: number) => new Date(ms).toISOString();
  const workflow = (w: WorkflowStats) => ({ ...w, trend: w.trend.map((b) => ({ start: iso(b.start), startMs: b.start, ended: b.ended, succeeded: b.succeeded, failed: b.failed, cycleP50Ms: b.cycleP50Ms })) });
  return { from: iso(s.from), to: iso(s.to), fromMs: s.from, toMs: s.to, windowMs: s.to - s.from, overall: workflow(s.overall), workflows: s.workflows.map(workflow) };
}
