/**
 * What every executor returns for one step attempt: process steps under the
 * supervisor (supervise.ts) and the built-in steps (builtin.ts, ssh/).
 */
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
