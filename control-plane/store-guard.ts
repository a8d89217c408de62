/**
 * API calls that change state and the disk: while the store cannot write,
 * they are refused before they change anything (UNAVAILABLE, naming the data
 * dir and the error), and a flush that fails under them becomes UNAVAILABLE
 * too, after `undo` has put back what they changed. Reads are never refused.
 */
import { UnavailableError } from './errors.js';
import { describeError } from './store/disk.js';
import type { Store } from './store/store.js';

/** Throws UNAVAILABLE while the store's writes fail; `outcome` says what did not happen ("no run was started"). */
export function requireWritable(store: Store, outcome: string): void {
  const h = store.health();
  if (!h.healthy) throw new UnavailableError(h, outcome);
}

/** Waits until the change is durable; on failure runs `undo` and throws UNAVAILABLE. */
export async function flushOrUndo(store: Store, outcome: string, undo?: () => void): Promise<void> {
  try {
    await store.flush();
  } catch (err) {
    undo?.();
    const h = store.health();
    throw new UnavailableError(h.healthy ? { dir: '', ...describeError(err) } : h, outcome, { cause: err });
  }
}
