/** In-process fan-out of state changes to API watchers (run views, fleet view). */
import type { RunChange } from './model/run.js';

export type { RunChange } from './model/run.js';

/** Where a listener's exception goes (main.ts logs it); unset, the first one is thrown after every listener had the change. */
let onListenerError: ((err: unknown) => void) | undefined;

/** Sets where a listener's exception goes: a watcher that fails (a closed stream, a bug) must not cost the others their change, nor the run machine its effects. */
export function setListenerErrorHandler(fn: ((err: unknown) => void) | undefined): void {
  onListenerError = fn;
}

export class Topic<T> {
  private listeners = new Set<(e: T) => void>();
  subscribe(fn: (e: T) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
  publish(e: T) {
    let failed: { err: unknown } | undefined;
    for (const fn of this.listeners) {
      try {
        fn(e);
      } catch (err) {
        if (onListenerError) onListenerError(err);
        else failed ??= { err };
      }
    }
    if (failed) throw failed.err;
  }
  get size() {
    return this.listeners.size;
  }
}

/** One topic per run id, created on first subscription, and one for every run's changes but its log lines. */
export class RunTopics {
  private topics = new Map<string, Topic<RunChange>>();
  /** Run and step changes of every run, a new run's first (the runs list, `drover runs --watch`, the dashboard). */
  readonly all = new Topic<Exclude<RunChange, { type: 'log' }>>();
  subscribe(runId: string, fn: (e: RunChange) => void): () => void {
    let t = this.topics.get(runId);
    if (!t) this.topics.set(runId, (t = new Topic()));
    const off = t.subscribe(fn);
    return () => {
      off();
      if (t?.size === 0) this.topics.delete(runId);
    };
  }
  publish(e: RunChange) {
    this.topics.get(e.run.id)?.publish(e);
    if (e.type !== 'log') this.all.publish(e);
  }
}
