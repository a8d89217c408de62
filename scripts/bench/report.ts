/** What a figure reports, the statistics it uses, the printed table and bench/results.json. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { dirname } from 'node:path';
import Table from 'cli-table3';

export interface Target {
  /** The value must be below (`<`) or at most (`<=`) the limit. */
  op: '<' | '<=';
  limit: number;
  /** As the issue states it, e.g. "≤ 1 ms/step above the floor". */
  text: string;
}

/** One measured value, its baseline from the same run, and its target if it has one. */
export interface Row {
  /** Stable key, e.g. "fanOut.nats.10000.completeMs". */
  id: string;
  /** Figure number and name, e.g. "3 fan-out". */
  figure: string;
  what: string;
  value: number;
  unit: string;
  baseline: { what: string; value: number; unit: string };
  /** value / baseline (same units); the baseline is floored where it can be ~0 (see `note`). */
  ratio: number;
  target?: Target;
  pass?: boolean;
  note?: string;
}

export function row(r: Omit<Row, 'ratio' | 'pass'> & { ratio?: number }): Row {
  const ratio = r.ratio ?? (r.baseline.value > 0 ? r.value / r.baseline.value : Number.NaN);
  const pass = r.target ? (r.target.op === '<' ? r.value < r.target.limit : r.value <= r.target.limit) : undefined;
  return { ...r, ratio, ...(pass === undefined ? {} : { pass }) };
}

/** Nearest-rank percentile (q in 0..1) of unsorted numbers. */
export function percentile(values: number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

export const p50 = (v: number[]) => percentile(v, 0.5);

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryBytes: number;
  node: string;
  platform: string;
  arch: string;
  kernel: string;
}

export function machine(): Machine {
  return {
    cores: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? '',
    memoryBytes: totalmem(),
    node: process.version,
    platform: process.platform,
    arch: process.arch,
    kernel: release(),
  };
}

export interface Results {
  version: 1;
  startedAt: string;
  durationSeconds: number;
  mode: 'full' | 'quick';
  command: string;
  commit: string;
  machine: Machine;
  /** Every figure's measurements and details, by figure key. */
  figures: Record<string, { rows: Row[]; details: Record<string, unknown> }>;
  /** Every row with a target, and whether it passed. */
  targets: { id: string; what: string; value: number; unit: string; target: string; pass: boolean }[];
}

export function gitCommit(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${sha}+dirty` : sha;
  } catch {
    return '';
  }
}

export function writeResults(file: string, results: Results) {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
}

/** A number with a sensible precision for a table cell. */
export function fmt(n: number): string {
  if (!Number.isFinite(n)) return '—';
  const a = Math.abs(n);
  if (a >= 1000) return Math.round(n).toLocaleString('en-US');
  if (a >= 100) return n.toFixed(0);
  if (a >= 10) return n.toFixed(1);
  if (a >= 1) return n.toFixed(2);
  return n.toFixed(3);
}

export function table(rows: Row[]): string {
  const t = new Table({
    head: ['figure', 'measure', 'value', 'baseline (same run)', 'ratio', 'target', 'result'],
    style: { head: [], border: [], compact: true },
    colAligns: ['left', 'left', 'right', 'right', 'right', 'left', 'left'],
  });
  for (const r of rows) {
    t.push([
      r.figure,
      r.what,
      `${fmt(r.value)} ${r.unit}`,
      `${fmt(r.baseline.value)} ${r.baseline.unit} ${r.baseline.what}`,
      Number.isFinite(r.ratio) ? `${fmt(r.ratio)}×` : '—',
      r.target?.text ?? '',
      r.pass === undefined ? '' : r.pass ? 'pass' : 'FAIL',
    ]);
  }
  return t.toString();
}
