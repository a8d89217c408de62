/**
 * Idempotent launch: the keys runs are started with (SubmitRun's
 * idempotency_key, a webhook's or NATS trigger's idempotencyKey, a
 * schedule's fire). Scope: the workflow's name and the key. A repeat before
 * the key expires starts nothing and answers the run the key started, also
 * after a restart and after that run was pruned (the key is its own record,
 * written in the same flush as the run). The same key with other params is
 * refused (IDEMPOTENCY_KEY_REUSED): it is a different request, not a retry.
 *
 * Concurrent launches with one key: the first registers itself as pending
 * before it waits for the disk; the others wait for it and answer its run,
 * or, when it failed (which records no key), try again themselves.
 */
import { createHash } from 'node:crypto';
import { ApiError } from './errors.js';
import type { RunPlan } from '../common/workflow/model/plan.js';
import type { LaunchKeyRecord, RunRecord, Store } from './store/store.js';

/** How long a key is remembered unless `drover server --idempotency-retention` says (Stripe keeps them 24 h). */
export const DEFAULT_IDEMPOTENCY_RETENTION_MS = 24 * 3_600_000;
/** Longest key: room for a UUID with a prefix, or a schedule's "schedule:<name>:<ISO time>". */
export const MAX_IDEMPOTENCY_KEY = 200;
/** Expired keys (and seen webhook signatures) are pruned at most this often, on the next launch. */
const PRUNE_EVERY_MS = 60_000;
/** A launch that waits for one with its key which then fails tries itself; after this many such failures it gives up. */
const MAX_WAITS = 5;

/** Throws INVALID_INPUT unless `key` is 1-200 printable ASCII characters. */
export function checkIdempotencyKey(key: string): void {
  if (key.length >= 1 && key.length <= MAX_IDEMPOTENCY_KEY && /^[\x20-\x7e]+$/.test(key)) return;
  const shown = JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key);
  const why = key.length === 0 ? 'is empty' : key.length > MAX_IDEMPOTENCY_KEY ? `is ${key.length} characters long` : 'holds characters other than printable ASCII';
  throw new ApiError('INVALID_INPUT', `idempotency key ${shown} ${why}`, `use 1-${MAX_IDEMPOTENCY_KEY} printable ASCII characters, e.g. a UUID or the sender's event id`);
}

/**
 * What a key's request is, as a hash: SHA-256 of the plan's bound params
 * (secret values are masked there), keys sorted, and for a re-run the run
 * it re-runs and how ("r-1 from:deploy"), so one key cannot stand for
 * another re-run.
 */
export function paramsHash(plan: Pick<RunPlan, 'params'>, rerun = ''): string {
  const sorted: unknown[] = Object.keys(plan.params)
    .sort()
    .map((k) => [k, plan.params[k]]);
  if (rerun) sorted.push({ rerun });
  return createHash('sha256').update(JSON.stringify(sorted)).digest('hex');
}

/** paramsHash of the request that made `run`. */
export function requestHash(run: RunRecord): string {
  return paramsHash(run.plan, run.rerunOf ? `${run.rerunOf} ${run.rerunMode ?? ''}` : '');
}

/** What a launch answered: a new run, or the one an earlier launch with the same key started. */
export interface Launched {
  runId: string;
  workflow: string;
  /** Absent only for a deduplicated launch whose first run has been pruned since. */
  run?: RunRecord;
  deduplicated: boolean;
}

export class LaunchKeys {
  private pending = new Map<string, { hash: string; done: Promise<Launched> }>();
  private prunedMs = 0;

  constructor(
    private readonly store: Store,
    private readonly now: () => number,
    readonly retentionMs = DEFAULT_IDEMPOTENCY_RETENTION_MS,
  ) {}

  /**
   * The answer for a repeat of (workflow, key), or undefined when this
   * launch is the first: then `start` runs, registered as pending until it
   * settles. Throws IDEMPOTENCY_KEY_REUSED for the same key with another
   * request (`hash`: paramsHash of the params, and of the run a re-run re-runs).
   */
  async once(workflow: string, key: string, hash: string, start: () => Promise<RunRecord>): Promise<Launched> {
    // Bounded: each pass either answers, or waits for a launch that then failed (a second failure ends it).
    for (let pass = 0; ; pass++) {
      this.prune();
      const id = `${workflow}\n${key}`;
      // Pending first: its key is in the store already, but not durable until its launch succeeds.
      const inFlight = this.pending.get(id);
      if (inFlight) {
        if (pass >= MAX_WAITS) throw new ApiError('UNAVAILABLE', `${pass} launches with idempotency key "${key}" of ${workflow} failed in a row; nothing was started`, 'try again later');
        const first = await inFlight.done.catch(() => undefined);
        if (first) return this.repeat(first.runId, workflow, key, inFlight.hash, hash);
        continue;
      }
      const stored = this.store.getLaunchKey(workflow, key);
      if (stored && stored.expiresMs > this.now()) return this.repeat(stored.runId, workflow, key, stored.paramsHash, hash);
      const done = start().then((run): Launched => ({ runId: run.id, workflow, run, deduplicated: false }));
      this.pending.set(id, { hash, done });
      try {
        return await done;
      } finally {
        this.pending.delete(id);
      }
    }
  }

  /** The key record for a new run: put in the store with the run, so one flush writes both. */
  record(run: RunRecord, key: string): LaunchKeyRecord {
    const createdMs = this.now();
    const rec: LaunchKeyRecord = { workflow: run.workflow, key, runId: run.id, paramsHash: requestHash(run), createdMs, expiresMs: createdMs + this.retentionMs };
    this.store.putLaunchKey(rec);
    return rec;
  }

  /** After a restart: a run whose key a torn write lost gets it back (a key is written after its run, never before). */
  restore(runs: readonly RunRecord[]) {
    for (const run of runs) {
      if (!run.idempotencyKey || this.store.getLaunchKey(run.workflow, run.idempotencyKey)) continue;
      const expiresMs = run.createdMs + this.retentionMs;
      if (expiresMs > this.now()) this.store.putLaunchKey({ workflow: run.workflow, key: run.idempotencyKey, runId: run.id, paramsHash: requestHash(run), createdMs: run.createdMs, expiresMs });
    }
  }

  private repeat(runId: string, workflow: string, key: string, firstHash: string, hash: string): Launched {
    if (firstHash !== hash) {
      throw new ApiError(
        'IDEMPOTENCY_KEY_REUSED',
        `idempotency key "${key}" of ${workflow} already started run ${runId} with other params; nothing was started`,
        'a retry must send the same params; a new request needs a new key',
      );
    }
    return { runId, workflow, run: this.store.getRun(runId), deduplicated: true };
  }

  private prune() {
    const now = this.now();
    if (now - this.prunedMs < PRUNE_EVERY_MS) return;
    this.prunedMs = now;
    this.store.pruneExpired(now);
  }
}
