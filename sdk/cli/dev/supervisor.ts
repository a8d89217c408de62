/**
 * Child processes of `drover dev`. Each child runs in its own process group
 * (so a terminal Ctrl-C reaches only `drover dev`, which then stops the
 * children in order) and writes stdout and stderr to its own log file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { readableLogLine } from './log-line.js';

/** How long a child gets between SIGTERM and SIGKILL. */
export const STOP_GRACE_MS = 5000;

/** A started child. */
export interface Child {
  name: string;
  logFile: string;
  process: ChildProcess;
  /** Set once the child has exited. */
  exit?: { code: number | null; signal: NodeJS.Signals | null };
}

/** Called when a child exits while the supervisor is not stopping. */
export type UnexpectedExit = (child: Child) => void;

/** Starts, watches and stops a set of node child processes. */
export class Supervisor {
  private readonly children: Child[] = [];
  private stopping = false;

  constructor(private readonly onUnexpectedExit: UnexpectedExit) {
    process.once('exit', () => {
      for (const c of this.children) if (!c.exit) c.process.kill('SIGKILL');
    });
  }

  /** Spawns `node script ...args` with output to `logFile` (truncated); `env` adds to this process's environment. */
  start(name: string, script: string, args: readonly string[], logFile: string, env: Record<string, string> = {}): Child {
    const fd = openSync(logFile, 'w');
    const proc = spawn(process.execPath, [script, ...args], { stdio: ['ignore', fd, fd], detached: true, env: { ...process.env, ...env } });
    closeSync(fd);
    const child: Child = { name, logFile, process: proc };
    this.children.push(child);
    proc.once('exit', (code, signal) => {
      child.exit = { code, signal };
      if (!this.stopping) this.onUnexpectedExit(child);
    });
    proc.once('error', () => {
      child.exit ??= { code: null, signal: null };
      if (!this.stopping) this.onUnexpectedExit(child);
    });
    return child;
  }

  /** Stops every child, last started first: SIGTERM, then SIGKILL after STOP_GRACE_MS. */
  async stopAll(): Promise<void> {
    this.stopping = true;
    for (const child of [...this.children].reverse()) await stop(child);
  }

  /** Kills every child at once with SIGKILL. */
  killAll(): void {
    this.stopping = true;
    for (const c of this.children) if (!c.exit) c.process.kill('SIGKILL');
  }
}

function stop(child: Child): Promise<void> {
  if (child.exit) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.process.kill('SIGKILL'), STOP_GRACE_MS);
    child.process.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.process.kill('SIGTERM');
  });
}

/** The last `lines` lines of a log file, indented, or a note that it is empty. */
export function logTail(file: string, lines = 20): string {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return `  (no log at ${file})\n`;
  }
  const tail = text.trimEnd().split('\n').slice(-lines);
  return tail.length && tail[0] ? tail.map((l) => `  | ${readableLogLine(l)}\n`).join('') : `  (${file} is empty)\n`;
}

/** "exited with code 1" / "was killed by SIGKILL". */
export function describeExit(child: Child): string {
  if (child.exit?.signal) return `was killed by ${child.exit.signal}`;
  if (child.exit?.code !== null && child.exit?.code !== undefined) return `exited with code ${child.exit.code}`;
  return 'failed to start';
}
