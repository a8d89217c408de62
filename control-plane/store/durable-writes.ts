/**
 * When a document store writes, and what its callers hear: the part the
 * lowdb and JetStream stores share (each says how one write is done).
 *
 * Changes are counted (touch); a write starts after the coalescing delay,
 * or at once for a flush that waits; a flush resolves once a write that
 * began after its changes succeeded. A failed write makes the store
 * unhealthy (said once per error code), rejects every waiting flush and is
 * tried again after a delay doubling from RETRY_MIN_MS to RETRY_MAX_MS;
 * while unhealthy a flush waits for that try instead of starting one, so
 * the backoff holds however many wait. The first write that succeeds again
 * makes it healthy.
 */
import type { Logger } from '../log.js';
import type { StoreHealth } from './store.js';

const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5_000;

type Unhealthy = Extract<StoreHealth, { healthy: false }>;

export interface DurableWritesOptions {
  coalesceMs: number;
  log?: Logger;
  /** Told how long each durable write took, in seconds. */
  onWrite?: (seconds: number) => void;
  /**
   * One write of what is dirty. It may return a step to take once the
   * flushes it covers are told (work that need not hold them, like a
   * snapshot of what is already durable).
   */
  write(): Promise<(() => Promise<void>) | void>;
  /** Something drained but not yet stored waits besides the counted changes (default: nothing). */
  backlog?(): boolean;
  /** The state after a failure (`sinceMs`: when the store first turned unhealthy) and the error line said when it starts or its code changes. */
  unhealthy(err: unknown, sinceMs: number): { state: Unhealthy; fields: Record<string, unknown>; message: string };
  /** Said after each failure, whatever its code (the lowdb store's log backlog). */
  afterFailure?(): void;
  /** The line said when writes succeed again, and its fields. */
  recovered: { fields: Record<string, unknown>; message: string };
}

interface Waiter {
  gen: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

export class DurableWrites {
  private changed = 0;
  private written = 0;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private waiters: Waiter[] = [];
  private state: StoreHealth = { healthy: true };
  private retryMs = 0;
  private failedTries = 0;
  private closing = false;

  constructor(private readonly o: DurableWritesOptions) {}

  health(): StoreHealth {
    return this.state;
  }

  /** A change was made in memory: a write follows after the coalescing delay. */
  touch() {
    this.changed++;
    if (!this.timer && !this.writing && !this.closing) this.timer = setTimeout(() => void this.loop(), this.o.coalesceMs);
  }

  /** Resolves once every change made so far is durable; rejects with the error of a write that failed. */
  flush(): Promise<void> {
    if (this.written >= this.changed) return Promise.resolve();
    const gen = this.changed;
    return new Promise((resolve, reject) => {
      this.waiters.push({ gen, resolve, reject });
      if (!this.state.healthy) return;
      clearTimeout(this.timer);
      this.timer = undefined;
      void this.loop();
    });
  }

  /** For close(): no more scheduled writes; the one running finishes and what is left is written once. */
  async finish() {
    this.closing = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.writing;
    if (this.pendingWork()) await this.loop();
  }

  /** For close(): flushes still waiting are told their changes were not written. */
  rejectWaiting() {
    this.settle(() => true, (w) => w.reject(new Error('the store was closed before this change was written')));
  }

  private pendingWork(): boolean {
    return this.written < this.changed || (this.o.backlog?.() ?? false);
  }

  private async loop() {
    this.timer = undefined;
    if (this.writing) return this.writing;
    let failed = false;
    this.writing = (async () => {
      while (this.pendingWork()) {
        const gen = this.changed;
        const started = performance.now();
        try {
          const after = await this.o.write();
          this.written = gen;
          this.o.onWrite?.((performance.now() - started) / 1000);
          this.recover();
          this.settle((w) => w.gen <= gen, (w) => w.resolve());
          if (after) await after();
        } catch (err) {
          failed = true;
          this.fail(err);
          this.settle(() => true, (w) => w.reject(err));
          break;
        }
      }
    })();
    try {
      await this.writing;
    } finally {
      this.writing = undefined;
      // Changes made while the last write was finishing start the next one:
      // at once when someone waits for them (a flush that found this write
      // busy), else after the coalescing delay. After a failure, after the
      // retry delay, whoever waits.
      clearTimeout(this.timer);
      this.timer = undefined;
      if (this.closing || !this.pendingWork()) {
        // nothing to do
      } else if (failed) this.timer = setTimeout(() => void this.loop(), this.retryMs);
      else if (this.waiters.length) void this.loop();
      else this.timer = setTimeout(() => void this.loop(), this.o.coalesceMs);
    }
  }

  private fail(err: unknown) {
    this.failedTries++;
    this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs ? this.retryMs * 2 : RETRY_MIN_MS);
    const was = this.state;
    const next = this.o.unhealthy(err, was.healthy ? Date.now() : was.sinceMs);
    if (was.healthy || was.code !== next.state.code) {
      this.state = next.state;
      this.o.log?.error(next.fields, next.message);
    } else this.o.log?.debug({ ...next.fields, tries: this.failedTries, retryInMs: this.retryMs }, 'state write failed again');
    this.o.afterFailure?.();
  }

  private recover() {
    if (this.state.healthy) return;
    this.o.log?.info({ ...this.o.recovered.fields, code: this.state.code, tries: this.failedTries, downMs: Date.now() - this.state.sinceMs }, this.o.recovered.message);
    this.state = { healthy: true };
    this.retryMs = 0;
    this.failedTries = 0;
  }

  private settle(pick: (w: Waiter) => boolean, act: (w: Waiter) => void) {
    const done = this.waiters.filter(pick);
    this.waiters = this.waiters.filter((w) => !pick(w));
    done.forEach(act);
  }
}
