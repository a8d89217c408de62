/**
 * Process steps (run, command, script) under a supervisor, so that a step does
 * not depend on the agent process: an agent that is killed or upgraded leaves
 * its steps running, and the next agent process re-attaches to them.
 *
 * The supervisor is a shell wrapper in a session and process group of its own
 * (setsid): it runs the step's argv with stdout and stderr going to files in
 * the attempt's directory, then writes the exit status to `exit` and exits
 * with it. Nothing ties it to the agent: no pipe (a dead reader would
 * SIGPIPE the step), no controlling terminal, no parent it needs.
 *
 *   <attempts-dir>/<run>.<attempt>.<step>/stdout, stderr   the step's output
 *                                         /exit            its status, written at its end
 *                                         /offsets         output bytes already reported
 *                                         /output          $DROVER_OUTPUT
 *                                         /script          a script step's body
 *
 * The wrapper's argv names its own `exit` file, which tells it apart from any
 * other process with a reused pid (/proc/<pid>/cmdline).
 *
 * Cancel and timeout signal the whole group: SIGTERM, then SIGKILL after the
 * grace period, as before; what the group leaves behind at its end goes too.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { ProcStats } from './proc-stats.js';
import type { RunningShell, ShellResult } from './shell.js';

/**
 * `$1` is the exit file. A run step's script (`$2`) runs in a subshell of
 * the supervisor (a fork, no second exec: a shell step costs what `sh -c`
 * did); other steps' argv is exec'd in one (exec: a program, never a shell
 * builtin of that name). `$?` of a killed step is 128 + its signal.
 *
 * The supervisor traps TERM, INT and HUP with a no-op: a cancel or timeout
 * signals the whole group, and the step (whose subshell has the default
 * dispositions again) gets the grace period while the supervisor stays to
 * write its real status; an agent that dies meanwhile finds it, never a
 * step running on with no one to report it. SIGKILL ends them all.
 *
 * The supervisor's own stderr is /dev/null (the step's is fd 3 until the
 * step starts): what the shell says itself ("Terminated" for a step killed by
 * a signal, a failed exit-file write) is not the step's output.
 */
const HEAD = 'trap : TERM INT HUP; exec 3>&2 2>/dev/null; __drover_exit=$1;';
const TAIL = 's=$?; echo "$s" > "$__drover_exit"; exit "$s"';
const WRAP_SCRIPT = `${HEAD} __drover_run=$2; shift 2; (exec 3>&-; eval "$__drover_run") 2>&3; ${TAIL}`;
const WRAP_ARGV = `${HEAD} shift; (exec "$@" 3>&-) 2>&3; ${TAIL}`;
/** How often an attached (not our child) supervisor is checked for its end. */
const POLL_MS = 100;

export interface AttemptPaths {
  dir: string;
  stdout: string;
  stderr: string;
  exit: string;
  offsets: string;
  output: string;
}

/** `<run>.<attempt>.<step>`: one directory level (each mkdir and rmdir counts on short steps); run ids hold no ".". */
export function attemptPaths(attemptsDir: string, runId: string, stepId: string, attempt: number): AttemptPaths {
  const dir = join(attemptsDir, `${runId}.${attempt}.${stepId}`);
  return { dir, stdout: join(dir, 'stdout'), stderr: join(dir, 'stderr'), exit: join(dir, 'exit'), offsets: join(dir, 'offsets'), output: join(dir, 'output') };
}

export interface SuperviseSpec {
  /** A shell script (run steps), or an argv to execute (command and script steps). */
  script?: string;
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  /** 0: none. Counted from startedAtMs, also for an attempt attached after a restart. */
  timeoutMs: number;
  graceMs: number;
  startedAtMs: number;
  paths: AttemptPaths;
}

export interface Supervised extends RunningShell {
  pid: number;
  /**
   * The output files, open for reading, when this process started the step
   * (the descriptors the step was given, opened with a+): hand them to an
   * AttemptOutput, which closes them.
   */
  files?: { stdout: number; stderr: number };
}

/** Starts a step under the supervisor, in `spec.paths.dir` (which exists); its output goes to files (see OutputTail). */
export function startSupervised(spec: Omit<SuperviseSpec, 'startedAtMs'>, stats: ProcStats, files = openOutputs(spec.paths)): Supervised {
  const { stdout: out, stderr: err } = files;
  const startedAtMs = Date.now();
  let child;
  try {
    const args = spec.script !== undefined ? [WRAP_SCRIPT, 'sh', spec.paths.exit, spec.script] : [WRAP_ARGV, 'sh', spec.paths.exit, ...spec.argv];
    child = spawn('/bin/sh', ['-c', ...args], {
      cwd: spec.cwd,
      env: spec.env,
      detached: true,
      stdio: ['ignore', out, err],
    });
  } catch (e) {
    closeSync(out);
    closeSync(err);
    throw e;
  }
  if (!child.pid) {
    closeSync(out);
    closeSync(err);
    // Not started at all (a missing work dir, no /bin/sh): 'error' comes, 'exit' may not.
    const result = new Promise<ShellResult>((resolve) =>
      child.once('error', (e) => resolve(ended({ ...spec, startedAtMs }, 0, stats, -1, '', false, false, `could not start the step: ${e.message}`))),
    );
    return { pid: 0, result, cancel: () => undefined };
  }
  const exited = new Promise<{ code: number; signal: string }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code: code ?? (signal ? 128 + (SIGNAL_NUMBERS[signal] ?? 0) : -1), signal: signal ?? '' })),
  );
  return { ...supervise({ ...spec, startedAtMs }, child.pid, stats, exited), files: { stdout: out, stderr: err } };
}

/**
 * Creates and opens an attempt's output files, a+: the step appends, this
 * process reads through the same descriptors (no second open). Separate from
 * the spawn so that a full disk is found before the attempt is recorded.
 */
export function openOutputs(paths: AttemptPaths): { stdout: number; stderr: number } {
  const stdout = openSync(paths.stdout, 'a+', 0o600);
  try {
    return { stdout, stderr: openSync(paths.stderr, 'a+', 0o600) };
  } catch (err) {
    closeSync(stdout);
    throw err;
  }
}

export function closeOutputs(files: { stdout: number; stderr: number } | undefined): void {
  if (!files) return;
  closeSync(files.stdout);
  closeSync(files.stderr);
}

/** What became of an attempt's supervisor while no agent watched it. */
export type Found = { state: 'running'; pid: number } | { state: 'ended'; code: number } | { state: 'gone' };

/** Finds an attempt's supervisor after an agent restart: by its recorded pid, or (pid never recorded) by a /proc scan. */
export function findSupervised(paths: AttemptPaths, pid?: number): Found {
  const live = pid && isSupervisor(pid, paths) ? pid : pid ? 0 : scanFor(paths);
  if (live) return { state: 'running', pid: live };
  const code = readExit(paths);
  return code === undefined ? { state: 'gone' } : { state: 'ended', code };
}

/**
 * Watches a supervisor started by an earlier agent process until it ends; an
 * attempt that ended while no agent watched resolves at once with its status
 * (ended then: the exit file's time).
 */
export function attachSupervised(spec: SuperviseSpec, found: Exclude<Found, { state: 'gone' }>, stats: ProcStats): Supervised {
  if (found.state === 'ended') {
    const endedAtMs = fileTimeMs(spec.paths.exit);
    const result = Promise.resolve({ ...ended(spec, 0, stats, found.code, signalOf(found.code), false, false), endedAtMs });
    return { pid: 0, result, cancel: () => undefined };
  }
  const { pid } = found;
  const exited = new Promise<{ code: number; signal: string }>((resolve) => {
    const check = () => {
      if (isSupervisor(pid, spec.paths)) return void setTimeout(check, POLL_MS);
      const code = readExit(spec.paths);
      // Gone without a status: killed (by a cancel, a timeout or someone else).
      resolve(code === undefined ? { code: 128 + 9, signal: 'SIGKILL' } : { code, signal: signalOf(code) });
    };
    check();
  });
  // Not our child: its pid may be another process's by the time we signal it.
  return supervise(spec, pid, stats, exited, () => isSupervisor(pid, spec.paths));
}

function supervise(
  spec: SuperviseSpec,
  pgid: number,
  stats: ProcStats,
  exited: Promise<{ code: number; signal: string }>,
  /** Still this attempt's supervisor (for one started by an earlier agent process); our own child needs no check. */
  ours: () => boolean = () => true,
): Supervised {
  // kill(-0) would signal the agent's own group.
  if (!(pgid > 0)) throw new Error(`bad process group ${pgid}`);
  stats.track(pgid);
  let timedOut = false;
  let cancelled = false;
  let over = false;
  let killTimer: NodeJS.Timeout | undefined;
  let killed = false;
  const signalGroup = (signal: NodeJS.Signals) => {
    if (!ours()) return false;
    try {
      process.kill(-pgid, signal);
      return true;
    } catch {
      return false;
    }
  };
  const killGroup = () => {
    if (over || !signalGroup('SIGTERM')) return;
    killTimer ??= setTimeout(() => ((killed = true), signalGroup('SIGKILL')), spec.graceMs);
  };
  const left = spec.timeoutMs > 0 ? spec.startedAtMs + spec.timeoutMs - Date.now() : Infinity;
  const timeout = Number.isFinite(left) ? setTimeout(() => ((timedOut = true), killGroup()), Math.max(0, left)) : undefined;
  const result = exited.then(async ({ code, signal }) => {
    over = true;
    clearTimeout(timeout);
    // Stopped on purpose: what the group still runs has the rest of its grace period.
    if (killTimer) await groupGone(pgid, () => killed);
    clearTimeout(killTimer);
    // Whatever the group left behind (daemonised children) goes too.
    signalGroup('SIGKILL');
    return ended(spec, pgid, stats, code, signal || signalOf(code), timedOut, cancelled);
  });
  return {
    pid: pgid,
    result,
    cancel() {
      cancelled = true;
      killGroup();
    },
  };
}

function ended(
  spec: SuperviseSpec,
  pgid: number,
  stats: ProcStats,
  exitCode: number,
  signal: string,
  timedOut: boolean,
  cancelled: boolean,
  spawnError?: string,
): ShellResult {
  const usage = pgid ? stats.untrack(pgid) : { cpuSeconds: 0, peakRssBytes: 0 };
  return { exitCode, signal, startedAtMs: spec.startedAtMs, endedAtMs: Date.now(), ...usage, timedOut, cancelled, spawnError };
}

/** Resolves once no process of the group is left, or `stop()` says to stop waiting (checked every 20 ms). */
function groupGone(pgid: number, stop: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      try {
        process.kill(-pgid, 0);
      } catch {
        return resolve();
      }
      if (stop()) return resolve();
      setTimeout(check, 20);
    };
    check();
  });
}

/**
 * The pid is a live (not zombie) supervisor of this attempt: its argv names
 * the attempt's exit file, and it leads its own session and group (its
 * subshells share the argv but not that).
 */
export function isSupervisor(pid: number, paths: AttemptPaths): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // After "(comm) ": state ppid pgrp session ...
    const [state, , pgrp, session] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (state === 'Z' || Number(pgrp) !== pid || Number(session) !== pid) return false;
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').includes(paths.exit);
  } catch {
    return false;
  }
}

/** The supervisor of an attempt whose pid was never recorded (the agent died between spawn and ledger write). */
function scanFor(paths: AttemptPaths): number {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    if (isSupervisor(Number(name), paths)) return Number(name);
  }
  return 0;
}

function fileTimeMs(file: string): number {
  try {
    return Math.round(statSync(file).mtimeMs);
  } catch {
    return Date.now();
  }
}

function readExit(paths: AttemptPaths): number | undefined {
  try {
    const text = readFileSync(paths.exit, 'utf8').trim();
    return /^\d+$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * An attempt's directory, once what it holds has been reported. Deferred
 * past the next step's start (setImmediate), and the entries unlinked as
 * listed: a recursive rm stats each one, and cost about a millisecond a step.
 */
export function removeAttempt(paths: AttemptPaths): void {
  setImmediate(() => {
    try {
      for (const name of readdirSync(paths.dir)) unlinkSync(join(paths.dir, name));
      rmdirSync(paths.dir);
    } catch {
      // Gone already, or not ours to remove (the next sweep at start-up tries again).
    }
  });
}

const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15 };

/** The signal a shell's 128+N status stands for (a step that exits 130 itself reads as SIGINT too). */
function signalOf(code: number): string {
  if (code <= 128) return '';
  return Object.entries(SIGNAL_NUMBERS).find(([, n]) => n === code - 128)?.[0] ?? '';
}
