/**
 * Attempts an earlier agent process started. Process steps run under a
 * supervisor (executor/supervise.ts) and outlive the agent: at start-up,
 * recover() finds what became of every attempt the ledger shows unended. One
 * still running, or ended with a status while no agent watched, is kept here
 * until its step is sent again (the runtime then takes it over: take()) or
 * the control plane cancels it (settle()). Anything else is really gone: its
 * last output is reported (unless it had secrets: masking needs them, and
 * they went with the last process) and the attempt is reported lost.
 */
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Masker } from './executor/mask.js';
import { readOffsets, type AttemptOutput, type Offsets } from './executor/output-tail.js';
import type { ProcStats } from './executor/proc-stats.js';
import { attachSupervised, attemptPaths, findSupervised, removeAttempt, type AttemptPaths, type Found, type Supervised } from './executor/supervise.js';
import type { Body } from './journal.js';
import type { AttemptEntry, Ledger } from './ledger.js';
import type { Logger } from './log.js';
import { LOST_MESSAGE } from './slice/machine.js';
import type { DoneStatus } from './slice/types.js';
import { stepEventOut } from './wire.js';

/** An attempt an earlier agent process started whose supervisor still ran (or had ended) at this one's start. */
export interface Detached {
  entry: AttemptEntry;
  found: Exclude<Found, { state: 'gone' }>;
  paths: AttemptPaths;
  /** Where its output is to be read from: what was reported already. */
  offsets: Offsets;
}

/** Reads an attempt's output files into the journal, from `from` on. */
export type OutputReader = (runId: string, stepId: string, attemptId: string, paths: AttemptPaths, from: Offsets, masker: Masker, open?: Supervised['files']) => AttemptOutput;

export interface DetachedOptions {
  agentName: string;
  attemptsDir: string;
  graceMs: number;
  ledger: Ledger;
  stats: ProcStats;
  output: OutputReader;
  emit(body: Body): boolean | void;
  log: Logger;
}

export class DetachedAttempts {
  private readonly attempts = new Map<string, Detached>();

  constructor(private readonly o: DetachedOptions) {}

  ids(): string[] {
    return [...this.attempts.keys()];
  }

  has(attemptId: string): boolean {
    return this.attempts.has(attemptId);
  }

  /** `logOffsets`: the output offsets the journal holds (Journal.logOffsets). */
  recover(entries: AttemptEntry[], logOffsets: Map<string, Offsets>) {
    this.sweep(new Set(entries.map((e) => e.attemptId)));
    for (const e of entries) {
      const [runId, stepId, attempt] = e.attemptId.split('/');
      const paths = attemptPaths(this.o.attemptsDir, runId, stepId, Number(attempt));
      const found = e.supervised ? findSupervised(paths, e.pid) : ({ state: 'gone' } as const);
      if (found.state !== 'gone') {
        this.attempts.set(e.attemptId, { entry: e, found, paths, offsets: offsetsOf(e.attemptId, paths, logOffsets) });
        this.o.log.info({ attemptId: e.attemptId, ...found }, found.state === 'running' ? 'attempt still running after the agent restarted; re-attaching when its step comes' : 'attempt ended while the agent was down; reporting its end when its step comes');
        continue;
      }
      // Its last lines, unless it had secrets (masking them needs them, and they went with the last process).
      if (e.supervised && !e.masked) this.drain(runId, stepId, e.attemptId, paths, offsetsOf(e.attemptId, paths, logOffsets));
      // What the attempt wrote to $DROVER_OUTPUT may hold a secret in clear, and is never read now.
      this.o.ledger.ended(e.attemptId, 'lost', {});
      removeAttempt(paths);
      this.o.log.warn({ attemptId: e.attemptId }, 'attempt was running when the agent stopped and is gone without an exit status; reporting it lost');
      this.startedAgain(e.attemptId, e.startedAtMs);
      this.o.emit(stepEventOut(runId, stepId, e.attemptId, Number(attempt), 'lost', { message: LOST_MESSAGE, endedAtMs: Date.now() }));
    }
  }

  /**
   * The attempt's step came again: its supervisor, watched from now on, or
   * undefined when it is gone since the start (then recorded lost).
   */
  take(attemptId: string, timeoutMs: number): { d: Detached; shell: Supervised } | undefined {
    const d = this.attempts.get(attemptId);
    if (!d) return undefined;
    this.attempts.delete(attemptId);
    // Found again now: it may have ended (or its pid gone to another process) since the start.
    const found = findSupervised(d.paths, d.found.state === 'running' ? d.found.pid : d.entry.pid);
    if (found.state === 'gone') {
      this.o.ledger.ended(attemptId, 'lost', {});
      removeAttempt(d.paths);
      return undefined;
    }
    return { d, shell: attachSupervised(this.superviseSpec(d.paths, timeoutMs, d.entry.startedAtMs), found, this.o.stats) };
  }

  /**
   * A Cancel of the run (or of one step, `stepId`): its detached attempts are
   * not ours any more (the control plane cancelled them or moved them away
   * while this agent was down). Each is stopped if it still runs, its output
   * reported (unless it had secrets) and its real end.
   */
  settle(runId: string, stepId: string, reason: string) {
    for (const [id, d] of this.attempts) {
      const [r, s] = id.split('/');
      if (r === runId && (!stepId || s === stepId)) this.settleOne(id, d, reason);
    }
  }

  private settleOne(attemptId: string, d: Detached, reason: string) {
    this.attempts.delete(attemptId);
    this.startedAgain(attemptId, d.entry.startedAtMs);
    const [runId, stepId, attempt] = attemptId.split('/');
    // Found again now: it may have ended (or its pid gone to another process) since the start.
    const found = findSupervised(d.paths, d.found.state === 'running' ? d.found.pid : d.entry.pid);
    if (found.state === 'gone') {
      if (!d.entry.masked) this.drain(runId, stepId, attemptId, d.paths, d.offsets);
      this.o.ledger.ended(attemptId, 'lost', {});
      removeAttempt(d.paths);
      this.o.emit(stepEventOut(runId, stepId, attemptId, Number(attempt), 'lost', { message: LOST_MESSAGE, endedAtMs: Date.now() }));
      return;
    }
    d = { ...d, found };
    const shell = attachSupervised(this.superviseSpec(d.paths, 0, d.entry.startedAtMs), d.found, this.o.stats);
    const output = d.entry.masked ? undefined : this.o.output(runId, stepId, attemptId, d.paths, d.offsets, new Masker([])).follow();
    shell.cancel();
    void shell.result.then((res) => {
      output?.finish();
      const status: DoneStatus = res.cancelled && d.found.state === 'running' ? 'cancelled' : res.exitCode === 0 ? 'succeeded' : 'failed';
      this.o.ledger.ended(attemptId, status, {});
      removeAttempt(d.paths);
      const message = status === 'cancelled' ? `stopped: ${reason}` : `${status === 'succeeded' ? 'succeeded' : `exited with code ${res.exitCode}`} while the agent was down; ${reason}`;
      this.o.emit(stepEventOut(runId, stepId, attemptId, Number(attempt), status, { message, exitCode: res.exitCode, startedAtMs: res.startedAtMs, endedAtMs: res.endedAtMs }));
    });
  }

  /**
   * The attempt's STARTED once more, before the end this process reports: the
   * last process may have died before it reached the journal (on a failing
   * disk it waits in memory), and an end must follow a STARTED
   * (docs/protocol.md, rule event-order). A repeated STARTED changes nothing.
   */
  private startedAgain(attemptId: string, startedAtMs = 0) {
    const [runId, stepId, attempt] = attemptId.split('/');
    this.o.emit(stepEventOut(runId, stepId, attemptId, Number(attempt), 'started', { startedAtMs }));
  }

  /** Reports what is left of an ended attempt's output, at once. */
  private drain(runId: string, stepId: string, attemptId: string, paths: AttemptPaths, from: Offsets) {
    this.o.output(runId, stepId, attemptId, paths, from, new Masker([])).finish();
  }

  /** Removes attempt directories (`<run>.<attempt>.<step>`) left by a process killed before it removed them (their attempts had ended). */
  private sweep(unended: Set<string>) {
    for (const name of readdirSync(this.o.attemptsDir)) {
      const m = /^([^.]+)\.(\d+)\.(.+)$/.exec(name);
      // Not ours (lost+found, a hand-made file): left alone.
      if (!m) continue;
      const [, run, attempt, step] = m;
      if (!unended.has(`${run}/${step}/${attempt}/${this.o.agentName}`)) rmSync(join(this.o.attemptsDir, name), { recursive: true, force: true });
    }
  }

  private superviseSpec(paths: AttemptPaths, timeoutMs: number, startedAtMs = Date.now()) {
    return { argv: [], env: {}, cwd: paths.dir, timeoutMs, graceMs: this.o.graceMs, startedAtMs, paths };
  }
}

/** Where an attempt's output was reported up to: the larger of its offsets file and what the journal holds. */
function offsetsOf(attemptId: string, paths: AttemptPaths, logOffsets: Map<string, Offsets>): Offsets {
  const a = readOffsets(paths);
  const b = logOffsets.get(attemptId) ?? { stdout: 0, stderr: 0 };
  return { stdout: Math.max(a.stdout, b.stdout), stderr: Math.max(a.stderr, b.stderr) };
}
