/** In-process fan-out of state changes to API watchers (run views, fleet view). */
import type { RunChange } from './model/run.js';

export type { RunChange } from './model/run.js';

export class Topic<T> {
  private listeners = new Set<(e: T) => void>();
  subscribe(fn: (e: T) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
  publish(e: T) {
    for (const fn of this.listeners) fn(e);
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
