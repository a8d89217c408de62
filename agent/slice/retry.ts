/**
 * A step's retry policy: whether a failed attempt gets another one, and after
 * how long. Decided from a typed failure, never from a message; the random
 * source of the jitter is passed in, so a test knows the delays a seed gives.
 */
import type { RetryPolicy } from './types.js';

/** Why an attempt failed, as far as the policy cares: a lost attempt is retried whatever `retryOn` says. */
export type Failure = { kind: 'exited' | 'timeout' | 'error'; exitCode: number } | { kind: 'lost' };

/** Whether attempt `attempt`, failed so, is followed by another one. */
export function retryable(retry: RetryPolicy | undefined, attempt: number, failure: Failure): retry is RetryPolicy {
  if (!retry || attempt >= retry.attempts) return false;
  return failure.kind === 'lost' || retry.retryOn.length === 0 || retry.retryOn.includes(failure.exitCode);
}

/** Delay before attempt n+1: fixed or exponential from `initialMs`, capped at `maxMs`, plus up to `jitter` of it at random. */
export function backoffDelay(retry: RetryPolicy, attempt: number, random: () => number): number {
  const base = retry.backoff === 'exponential' ? retry.initialMs * 2 ** (attempt - 1) : retry.initialMs;
  const capped = Math.min(base, retry.maxMs || base);
  return Math.round(capped * (1 + (retry.jitter || 0) * random()));
}
