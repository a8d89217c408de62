/**
 * What `drover agent install` / `uninstall` print: live progress (a line per
 * busy host redrawn in place on a terminal, plain step lines otherwise), the
 * per-host result table, each failure with its fix, and --dry-run plans.
 */
import { createLogUpdate } from 'log-update';
import type { Action, HostResult, InstallEvents } from '../../install/index.js';
import { renderTable } from '../table.js';

/** Redraws of the terminal display at most this often while a binary uploads. */
const REDRAW_MS = 100;

const OUTCOME_TEXT: Record<HostResult['outcome'], string> = {
  installed: 'installed',
  upgraded: 'upgraded',
  completed: 'completed',
  uninstalled: 'uninstalled',
  'not-installed': 'not installed',
  planned: 'planned (dry run)',
  failed: 'FAILED',
};

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

/** Progress for many hosts at once. */
export class InstallProgress implements InstallEvents {
  private readonly active = new Map<string, string>();
  private readonly live: ReturnType<typeof createLogUpdate> | undefined;
  private lastDraw = 0;
  private finished = 0;
  private failed = 0;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly total: number,
  ) {
    this.live = stream.isTTY ? createLogUpdate(stream) : undefined;
  }

  step(target: string, title: string, sudo: boolean): void {
    const text = `${title}${sudo ? ' (sudo)' : ''}`;
    this.active.set(target, text);
    if (this.live) this.draw(true);
    else this.stream.write(`${target}: ${text}\n`);
  }

  upload(target: string, sent: number, total: number): void {
    if (!this.live) return;
    const base = (this.active.get(target) ?? '').replace(/ \d+%$/, '');
    this.active.set(target, `${base} ${Math.floor((sent / total) * 100)}%`);
    this.draw(false);
  }

  /** A host is done: its line leaves the live area and stays in the scrollback. */
  done(result: HostResult): void {
    this.active.delete(result.target);
    this.finished += 1;
    if (!result.ok) this.failed += 1;
    const line = `${result.ok ? '✓' : '✗'} ${result.target}: ${OUTCOME_TEXT[result.outcome]}${result.name ? ` ${result.name}` : ''}` +
      `${result.error ? ` (${result.error.reason})` : ''} in ${seconds(result.ms)}`;
    if (this.live) {
      this.live.persist(line);
      this.draw(true);
    } else {
      this.stream.write(`${line}\n`);
    }
  }

  /** Clears the live area. */
  finish(): void {
    this.live?.clear();
    this.live?.done();
  }

  private draw(force: boolean): void {
    const now = Date.now();
    if (!this.live || (!force && now - this.lastDraw < REDRAW_MS)) return;
    this.lastDraw = now;
    const width = Math.max(...[...this.active.keys()].map((t) => t.length), 0);
    const lines = [...this.active].map(([t, s]) => `  ${t.padEnd(width)}  ${s}`);
    const counts = `${this.finished}/${this.total} done${this.failed ? `, ${this.failed} failed` : ''}`;
    this.live(this.total > 1 ? [counts, ...lines].join('\n') : lines.join('\n'));
  }
}

/** The per-host table, then each failure with its reason and fix, then notes. */
export function resultReport(results: readonly HostResult[]): string {
  const table = renderTable(
    ['HOST', 'NAME', 'RESULT', 'VERSION', 'ARCH', 'INIT', 'SUDO', 'TIME'],
    results.map((r) => [
      r.target,
      r.name ?? '-',
      r.ok ? OUTCOME_TEXT[r.outcome] : `FAILED: ${r.error?.reason ?? 'UNKNOWN'}`,
      r.version ?? '-',
      r.arch ?? '-',
      r.init ?? '-',
      r.sudo ? 'yes' : 'no',
      seconds(r.ms),
    ]),
  );
  const details: string[] = [];
  for (const r of results) {
    if (r.error) {
      details.push(`\nerror: ${r.error.message}`);
      if (r.error.hint) details.push(`fix: ${r.error.hint}`);
    }
    for (const note of r.notes) details.push(`note: ${r.target}: ${note}`);
  }
  const ok = results.filter((r) => r.ok).length;
  const summary = `\n${ok} of ${results.length} host${results.length === 1 ? '' : 's'} succeeded\n`;
  return table + (details.length ? `${details.join('\n')}\n` : '') + summary;
}

function indent(text: string, by: string): string {
  return text.replace(/\n$/, '').split('\n').map((l) => `${by}${l}`).join('\n');
}

function describeAction(a: Action, n: number | undefined): string {
  const lines = [`  ${n === undefined ? '-' : `${n}.`} ${a.title}${a.sudo ? ' (sudo)' : ''}`, indent(`$ ${a.command}`, '       ')];
  if (a.stdin && 'file' in a.stdin) {
    lines.push(`       stdin: ${a.stdin.file} (${a.stdin.bytes} bytes)`);
  } else if (a.stdin) {
    const text = a.stdin.secret ? a.stdin.text.split(a.stdin.secret).join('********') : a.stdin.text;
    lines.push('       stdin:', indent(text, '         | '));
  }
  return lines.join('\n');
}

/** A --dry-run's plan for one host: the probes that ran, every action with its exact command, and the rollback. */
export function planReport(r: HostResult): string {
  const out = [`${r.target}: dry run, nothing was changed${r.sudo ? '; the login user is not root, so privileged commands use sudo -n' : ''}`];
  out.push(' read-only probes that ran:', ...r.probes.map((a) => describeAction(a, undefined)));
  if (r.plan.length > 0) out.push(' would run:', ...r.plan.map((a, i) => describeAction(a, i + 1)));
  if (r.rollback.length > 0) out.push(' and, if a step or the connection check fails, roll back with:', ...r.rollback.map((a) => describeAction(a, undefined)));
  return `${out.join('\n')}\n`;
}

/** Results as JSON for `-o json`: errors flattened to reason, message and hint. */
export function resultsJson(results: readonly HostResult[]): unknown {
  return results.map(({ error, probes: _p, plan, rollback: _r, ...rest }) => ({
    ...rest,
    ...(plan.length && rest.outcome === 'planned' ? { plan: plan.map((a) => ({ title: a.title, command: a.command, sudo: a.sudo })) } : {}),
    ...(error ? { error: { code: error.code, reason: error.reason, message: error.message, hint: error.hint, rolledBack: error.rolledBack } } : {}),
  }));
}
