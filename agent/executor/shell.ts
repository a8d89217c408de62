/**
 * Runs one step attempt with /bin/sh -c in its own process group, streaming
 * stdout and stderr as they are produced. Timeout and cancel signal the whole
 * group: SIGTERM, then SIGKILL after the grace period.
 */
import { spawn } from 'node:child_process';
import type { ProcStats } from './proc-stats.js';

export interface ShellSpec {
  /** argv; for run steps ['/bin/sh', '-c', text]. */
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  timeoutMs: number;
  /** Time between SIGTERM and SIGKILL. */
  graceMs: number;
  onOutput(stream: 'stdout' | 'stderr', data: Buffer): void;
}

export interface ShellResult {
  exitCode: number;
  signal: string;
  startedAtMs: number;
  endedAtMs: number;
  cpuSeconds: number;
  peakRssBytes: number;
  timedOut: boolean;
  cancelled: boolean;
  /** Set when the step could not run at all (process not started, bad input). */
  spawnError?: string;
  /** Outputs produced by built-in steps (process steps write $DROVER_OUTPUT). */
  outputs?: Record<string, string>;
}

export interface RunningShell {
  result: Promise<ShellResult>;
  cancel(): void;
  /** Process (and group) id, for process steps. */
  pid?: number;
}

export function runShell(spec: ShellSpec, stats: ProcStats): RunningShell {
  const startedAtMs = Date.now();
  let timedOut = false;
  let cancelled = false;
  const child = spawn(spec.argv[0], spec.argv.slice(1), {
    cwd: spec.cwd,
    env: spec.env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pgid = child.pid;
  if (pgid) stats.track(pgid);

  let killTimer: NodeJS.Timeout | undefined;
  const killGroup = () => {
    if (!pgid || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-pgid, 'SIGTERM');
    } catch {
      return;
    }
    killTimer ??= setTimeout(() => {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, spec.graceMs);
  };
  const timeout = spec.timeoutMs > 0 ? setTimeout(() => ((timedOut = true), killGroup()), spec.timeoutMs) : undefined;

  child.stdout!.on('data', (d: Buffer) => spec.onOutput('stdout', d));
  child.stderr!.on('data', (d: Buffer) => spec.onOutput('stderr', d));

  const result = new Promise<ShellResult>((resolve) => {
    let spawnError: string | undefined;
    child.on('error', (err) => (spawnError = `could not start ${spec.argv[0]}: ${err.message}`));
    // 'close' fires after both pipes drained, so every byte is delivered first.
    child.on('close', (code, signal) => {
      clearTimeout(timeout);
      clearTimeout(killTimer);
      // Whatever the group left behind (daemonised children) goes too.
      if (pgid) {
        try {
          process.kill(-pgid, 'SIGKILL');
        } catch {
          // empty group
        }
      }
      const usage = pgid ? stats.untrack(pgid) : { cpuSeconds: 0, peakRssBytes: 0 };
      resolve({
        exitCode: code ?? (signal ? 128 + (signalNumber(signal) ?? 0) : -1),
        signal: signal ?? '',
        startedAtMs,
        endedAtMs: Date.now(),
        ...usage,
        timedOut,
        cancelled,
        spawnError,
      });
    });
  });
  return {
    result,
    pid: pgid,
    cancel() {
      cancelled = true;
      killGroup();
    },
  };
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15, SIGPIPE: 13, SIGABRT: 6, SIGSEGV: 11 };
function signalNumber(signal: string): number | undefined {
  return SIGNALS[signal];
}
