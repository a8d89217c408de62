/**
 * Riding out a JetStream leader election: the rule the state, log and
 * sample streams (jetstream-store.ts, jetstream-logs.ts,
 * jetstream-samples.ts) share for what to try again.
 */
import { JetStreamApiError } from '@nats-io/jetstream';

/** JetStream's "system temporarily unavailable" (10008), as an API error or (for the account info) as a plain error with that text. */
export function isTemporarilyUnavailable(err: unknown): boolean {
  return (err instanceof JetStreamApiError && err.code === 10008) || /JetStream system temporarily unavailable/i.test((err as Error)?.message ?? '');
}

export function isTimeout(err: unknown): boolean {
  return (err as Error)?.name === 'TimeoutError';
}

/** nats.js reports a JetStream request nobody answered as "jetstream is not enabled", with the no-responders error as its cause. */
export function isNoResponders(err: unknown): boolean {
  return !!(err as { cause?: { isNoResponders?: () => boolean } })?.cause?.isNoResponders?.();
}

/**
 * Runs `fn` again (100 ms, 200 ms, … up to 1 s apart) while nobody answers,
 * it times out or JetStream is electing a leader, for `rideThroughMs`;
 * then, or on any other error, throws. `fn` must be safe to repeat (a
 * publish carries a message id, so a retry is a duplicate the stream drops).
 */
export async function whileElecting<T>(fn: () => Promise<T>, rideThroughMs: number, onFirstRetry?: (err: unknown) => void): Promise<T> {
  const giveUpAt = Date.now() + rideThroughMs;
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (!(isTemporarilyUnavailable(err) || isNoResponders(err) || isTimeout(err)) || Date.now() >= giveUpAt) throw err;
      if (i === 1) onFirstRetry?.(err);
      await new Promise((r) => setTimeout(r, Math.min(1000, 100 * i)));
    }
  }
}
