/**
 * The leader lease of replicated control planes (`--store jetstream`): one
 * key in the JetStream key-value bucket DROVER_LEADER, whose entries live
 * for the lease's length (the bucket's max age) unless written again.
 *
 * - A candidate takes the lease by creating the key (which JetStream refuses
 *   while it exists); the revision that create got is the leader's fencing
 *   epoch, larger than every epoch before it.
 * - The leader renews every third of the lease by updating the key at the
 *   revision it last wrote (compare-and-set): an update refused because the
 *   revision moved means another replica leads, and the lease is lost.
 * - Renewals that JetStream does not answer (a NATS server died and the
 *   bucket's stream elects another leader) keep the lease for a grace
 *   (DEFAULT_GRACE_MS): nobody can take the key while nobody can write it.
 * - The leader holds the lease until `ttl - margin` after it SENT its last
 *   renewal that succeeded, by its own monotonic clock: the server expires
 *   the key `ttl` after it STORED that renewal, which is later, so the old
 *   leader has stopped writing before a new one can be elected. A process
 *   that was paused (SIGSTOP, a long GC, a frozen VM) sees its lease run
 *   out on waking and stops there; the state stream's expected-sequence
 *   fence (jetstream-store.ts) catches a write already on its way.
 * - Every replica also keeps a `replica.<id>` entry there (its address and
 *   role), renewed on the same beat, so `drover server status` lists the
 *   replicas that are alive.
 * - A leader that stops cleanly deletes the key at its revision, so the
 *   next leader need not wait out the lease.
 */
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { NatsConnection } from '@nats-io/nats-core';
import { JetStreamApiError, StorageType } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { Logger } from '../log.js';

/** The bucket of the lease and of the replicas' entries. */
export const LEADER_BUCKET = 'DROVER_LEADER';
const LEADER_KEY = 'leader';
const REPLICA_PREFIX = 'replica.';
/** JetStream's "wrong last sequence": the key moved since the revision we know. */
const WRONG_LAST_SEQUENCE = 10071;

/**
 * Default lease length. A dead leader is replaced this long after its last
 * renewal (plus an election poll and the state load); a leader whose event
 * loop stalls for two thirds of it misses renewals and steps down.
 */
export const DEFAULT_LEASE_MS = 3_000;

/**
 * How long a leader keeps leading while JetStream does not answer its
 * renewals: as long as that lasts. The bucket's stream elects a leader
 * after a NATS server died (nats-server takes 4-9 s), or has no quorum at
 * all; nobody can take the key meanwhile, and the state store refuses
 * changes (UNAVAILABLE) until JetStream is back. When only this replica was
 * cut off and another took the key, its first renewal once connected again
 * is refused and it stops; any state write it makes before that is refused
 * by the state stream's fence, which the new leader set.
 */
export const DEFAULT_GRACE_MS = Number.POSITIVE_INFINITY;
/** While renewals keep failing, one warning per this long. */
const RETRY_WARN_EVERY_MS = 5000;
/** Renewals are retried this often during the grace. */
const GRACE_RETRY_MS = 250;

/** Who leads, as the lease key says. */
export interface LeaderInfo {
  /** The replica's id (its host name and gRPC address). */
  id: string;
  /** Its gRPC address, for clients and agents to go to. */
  address: string;
  /** Its HTTP address (dashboard, /metrics), '' when off. */
  http: string;
  /** The fencing epoch: the key's revision when this leader took it. */
  epoch: number;
  /** When it took the lease (its clock, ms since the epoch). */
  sinceMs: number;
}

/** A live replica, as its entry says. */
export interface ReplicaInfo {
  id: string;
  address: string;
  http: string;
  role: 'leader' | 'standby';
  /** When it started (its clock). */
  startedMs: number;
  /** When it last renewed its entry (its clock). */
  seenMs: number;
}

export interface LeaseOptions {
  nc: NatsConnection;
  /** Replicas of the bucket (as --store-replicas). */
  replicas: number;
  /** This replica's gRPC and HTTP addresses, as others should dial them. */
  address: string;
  http?: string;
  ttlMs?: number;
  /** How long renewals JetStream does not answer keep the lease held (DEFAULT_GRACE_MS). */
  graceMs?: number;
  log?: Logger;
  /** Told once, when the lease is lost after being held (renewal refused or run out). */
  onLost?: (reason: string) => void;
}

export class LeaderLease {
  readonly id: string;
  readonly ttlMs: number;
  private readonly graceMs: number;
  private kv!: KV;
  private readonly startedMs = Date.now();
  /** While leading: the key's revision we last wrote, and when (monotonic) we sent that write. */
  private revision = 0;
  private heldUntil = 0;
  /** While renewals fail because JetStream does not answer (not because another replica holds the key): how long this replica still counts as leading. 0: not in that state. */
  private graceUntil = 0;
  private info: LeaderInfo | undefined;
  private lost = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  /** When a failed renewal was last logged: once per RETRY_WARN_EVERY_MS, not every retry. */
  private warnedAt = 0;
  /** The leader as last read (undefined: none, or not read yet). */
  private seen: LeaderInfo | undefined;

  constructor(private readonly o: LeaseOptions) {
    this.ttlMs = o.ttlMs ?? DEFAULT_LEASE_MS;
    this.graceMs = o.graceMs ?? DEFAULT_GRACE_MS;
    this.id = `${hostname()}_${o.address}`.replace(/[^-/_=.a-zA-Z0-9]/g, '_');
  }

  /** Makes (or binds) the bucket; safe on every replica at once. */
  async open(): Promise<void> {
    this.kv = await new Kvm(this.o.nc).create(LEADER_BUCKET, {
      ttl: this.ttlMs,
      history: 1,
      replicas: this.o.replicas,
      storage: StorageType.File,
      description: 'drover control-plane leader lease and live replicas',
      // Reads go to the stream's leader: a replica that just came back and has not caught up (direct gets
      // are answered by any replica) would show the key missing, and a holder reclaiming it would take
      // the refusal of its create for another replica's lease.
      allow_direct: false,
    });
  }

  /** The fencing epoch while leading (0 before). */
  get epoch(): number {
    return this.info?.epoch ?? 0;
  }

  /** True while this replica holds the lease by its own clock: it may write and talk to agents. */
  valid(): boolean {
    const now = performance.now();
    return !!this.info && !this.lost && (now < this.heldUntil || now < this.graceUntil);
  }

  /** The leader as last read, or this replica while it leads. */
  leader(): LeaderInfo | undefined {
    return this.info && !this.lost ? this.info : this.seen;
  }

  /**
   * Waits until this replica holds the lease; returns its epoch. Tries every
   * `pollMs` (the key expires on the server, which sends no notice), and
   * keeps this replica's entry fresh meanwhile. `onStandby` hears each new
   * leader seen while waiting.
   */
  async campaign(onLeader?: (leader: LeaderInfo | undefined) => void, pollMs = Math.max(100, Math.round(this.ttlMs / 12))): Promise<number> {
    let last = '';
    let lastBeat = 0;
    while (!this.stopped) {
      if (performance.now() - lastBeat >= this.ttlMs / 3) {
        lastBeat = performance.now();
        void this.beat('standby');
      }
      const sent = performance.now();
      const me: LeaderInfo = { id: this.id, address: this.o.address, http: this.o.http ?? '', epoch: 0, sinceMs: Date.now() };
      try {
        const revision = await this.kv.create(LEADER_KEY, JSON.stringify(me));
        me.epoch = revision;
        // The epoch is in the key's value too, for readers: written at once, still within the lease.
        this.revision = await this.kv.update(LEADER_KEY, JSON.stringify(me), revision);
        this.info = me;
        this.heldUntil = sent + this.ttlMs - this.margin();
        this.o.log?.info({ epoch: me.epoch, leaseMs: this.ttlMs }, 'this replica took the leader lease');
        this.schedule();
        return me.epoch;
      } catch (err) {
        if (!isTaken(err) && !isTransient(err)) throw err;
      }
      this.seen = await this.read().catch(() => this.seen);
      const key = this.seen ? `${this.seen.id}@${this.seen.epoch}` : '';
      if (key !== last) {
        last = key;
        onLeader?.(this.seen);
      }
      await sleep(pollMs);
    }
    throw new Error('stopped before taking the lease');
  }

  /** The lease key's leader now (undefined: none). */
  async read(): Promise<LeaderInfo | undefined> {
    const e = await this.kv.get(LEADER_KEY);
    if (!e || e.operation !== 'PUT' || !e.value.length) return undefined;
    return JSON.parse(e.string()) as LeaderInfo;
  }

  /** The replicas whose entries are alive, by id. */
  async replicas(): Promise<ReplicaInfo[]> {
    const out: ReplicaInfo[] = [];
    for await (const key of await this.kv.keys(`${REPLICA_PREFIX}>`)) {
      const e = await this.kv.get(key);
      if (e?.operation === 'PUT' && e.value.length) out.push(JSON.parse(e.string()) as ReplicaInfo);
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Stops renewing; a leader deletes the key (at its revision) so a standby takes over at once. */
  async resign(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.kv.delete(`${REPLICA_PREFIX}${this.id}`).catch(() => undefined);
    if (!this.valid()) return;
    this.lost = true;
    await this.kv.delete(LEADER_KEY, { previousSeq: this.revision }).catch(() => undefined);
  }

  /** Room left for the difference between our clock's rate and the server's. */
  private margin(): number {
    return Math.max(100, this.ttlMs / 10);
  }

  private schedule() {
    this.timer = setTimeout(() => void this.renew(), this.graceUntil ? GRACE_RETRY_MS : Math.round(this.ttlMs / 3));
  }

  private async renew() {
    if (this.stopped || this.lost || !this.info) return;
    if (!this.valid()) return this.lose(`the lease ran out (no renewal succeeded within ${this.ttlMs} ms: the process was paused or NATS was unreachable)`);
    const sent = performance.now();
    try {
      // Answered (or given up on) before the lease runs out, so a failure is seen while it still holds.
      this.revision = await this.kv.update(LEADER_KEY, JSON.stringify(this.info), this.revision, Math.max(GRACE_RETRY_MS, Math.round((Math.min(Math.max(this.heldUntil, this.graceUntil), sent + this.ttlMs) - sent) * 0.8)));
      this.heldUntil = sent + this.ttlMs - this.margin();
      if (this.graceUntil) this.o.log?.info({ epoch: this.epoch }, 'the leader lease is renewed again');
      this.graceUntil = 0;
    } catch (err) {
      if (isTaken(err)) {
        const outcome = await this.reclaim();
        if (outcome === 'lost') return this.lose('another replica holds the lease (its revision moved)');
        if (outcome === 'ours') {
          this.timer = setTimeout(() => void this.renew(), 0);
          return;
        }
      }
      // JetStream is electing the bucket's leader (a NATS server died): nobody can take the key meanwhile,
      // so this replica keeps leading for the grace, as the state store rides through the same election.
      // Only when the failure comes while it still holds: a process woken from a pause gets no grace.
      if ((isTransient(err) || isTaken(err)) && !this.graceUntil && performance.now() < this.heldUntil) {
        this.graceUntil = this.heldUntil + this.graceMs;
        this.o.log?.warn({ err: (err as Error).message, graceMs: this.graceMs }, 'JetStream does not answer the lease renewal (electing?); still leading while it retries');
      } else if (performance.now() - this.warnedAt >= RETRY_WARN_EVERY_MS) {
        this.warnedAt = performance.now();
        this.o.log?.warn({ err: (err as Error).message }, 'could not renew the leader lease; trying again');
      }
    }
    void this.beat('leader');
    if (!this.valid()) return this.lose(`the lease ran out (no renewal succeeded within ${this.ttlMs} ms)`);
    this.schedule();
  }

  /**
   * After a renewal refused for a moved revision: 'ours' when the key still
   * names this leader (a renewal whose answer was lost was stored after all)
   * or when it expired while JetStream could not be written and this replica
   * made it again (nobody took it meanwhile: a leader that had would have
   * fenced the state stream, which stops this one at its next write);
   * 'lost' when another replica's value is there; 'unknown' when the key
   * cannot be read now (try again).
   */
  private async reclaim(): Promise<'ours' | 'lost' | 'unknown'> {
    const held = await this.heldBy();
    if (held !== 'none') return held;
    try {
      this.revision = await this.kv.create(LEADER_KEY, JSON.stringify(this.info));
      this.o.log?.warn({ epoch: this.epoch, revision: this.revision }, 'the leader lease expired while JetStream could not be written and nobody took it; this replica holds it again');
      return 'ours';
    } catch (err) {
      // The key is there after all: perhaps this replica's own earlier create, which timed out while JetStream
      // had no quorum and was stored once it had. Whose it is decides, not the refusal.
      if (!isTaken(err)) return 'unknown';
      const again = await this.heldBy();
      return again === 'none' ? 'unknown' : again;
    }
  }

  /** Whose the key is now: 'ours' (and its revision adopted), 'lost' (another replica's), 'none', or 'unknown' (unreadable). */
  private async heldBy(): Promise<'ours' | 'lost' | 'none' | 'unknown'> {
    let e;
    try {
      e = await this.kv.get(LEADER_KEY);
    } catch {
      return 'unknown';
    }
    if (!e || e.operation !== 'PUT' || !e.value.length) return 'none';
    if (!isSameLeader(JSON.parse(e.string()) as LeaderInfo, this.info!)) return 'lost';
    if (e.revision !== this.revision) this.o.log?.info({ epoch: this.epoch, revision: e.revision }, 'a lease write that seemed lost was stored; renewing from it');
    this.revision = e.revision;
    return 'ours';
  }

  private lose(reason: string) {
    if (this.lost) return;
    this.lost = true;
    clearTimeout(this.timer);
    this.o.log?.error({ epoch: this.epoch, reason }, 'lost the leader lease');
    this.o.onLost?.(reason);
  }

  private async beat(role: ReplicaInfo['role']) {
    const entry: ReplicaInfo = { id: this.id, address: this.o.address, http: this.o.http ?? '', role, startedMs: this.startedMs, seenMs: Date.now() };
    await this.kv.put(`${REPLICA_PREFIX}${this.id}`, JSON.stringify(entry)).catch(() => undefined);
  }
}

function isSameLeader(a: LeaderInfo, b: LeaderInfo): boolean {
  return a.id === b.id && a.epoch === b.epoch;
}

/** The key exists (create) or moved (update): another replica's write won. */
function isTaken(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === WRONG_LAST_SEQUENCE || /wrong last sequence|key exists/i.test((err as Error)?.message ?? '');
}

/** Nobody answered, or JetStream is electing: try again on the next poll. */
function isTransient(err: unknown): boolean {
  const e = err as { name?: string; message?: string; code?: number; cause?: { isNoResponders?: () => boolean } };
  return e?.name === 'TimeoutError' || !!e?.cause?.isNoResponders?.() || (err instanceof JetStreamApiError && err.code === 10008) || /temporarily unavailable|timeout|no responders|jetstream is not enabled/i.test(e?.message ?? '');
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}
