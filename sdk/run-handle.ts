import type { RunsApi } from './runs.js';
import type { Run, RunEvent } from './types.js';

/** Options for `RunHandle.events`. */
export interface RunEventsOptions {
  /** Interleave log lines (past ones first). Default false. */
  logs?: boolean;
}

/** A launched run: its id, its first snapshot and ways to follow it. */
export class RunHandle {
  /** @internal */
  constructor(
    private readonly api: RunsApi,
    /** The run as it was right after submission. */
    readonly run: Run,
  ) {}

  get id(): string {
    return this.run.id;
  }

  /** True when the launch's idempotency key had started this run before: nothing new was started. */
  get deduplicated(): boolean {
    return this.run.deduplicated;
  }

  /** Resolves with the final run once it is succeeded, failed or cancelled. */
  async wait(): Promise<Run> {
    return this.api.wait(this.id);
  }

  /** A snapshot of the run, then every change until it ends. */
  events(options: RunEventsOptions = {}): AsyncIterable<RunEvent> {
    return this.api.watch(this.id, options);
  }

  /** Asks the control plane to cancel the run. */
  async cancel(reason?: string): Promise<Run> {
    return this.api.cancel(this.id, reason);
  }
}
