/**
 * The Store on NATS JetStream (`drover server --store jetstream`): the same
 * in-memory document, dirty tracking and change records as the lowdb store
 * (DocumentStore), with the change batches appended to a replicated stream
 * instead of a local file, and whole documents kept in an object store.
 *
 * - Each coalesced write publishes its batch (JSON lines, split to fit the
 *   server's max_payload) on STATE_SUBJECT of stream DROVER_STATE, with the
 *   stream's last sequence expected (`Nats-Expected-Last-Sequence`) and a
 *   message id. A second writer on the same stream is refused by the server
 *   (its expected sequence is stale): that is the fencing a later leader
 *   election builds on. The message id makes a retry of a publish whose
 *   ack was lost a duplicate instead of a second copy.
 * - Once the batches since the last snapshot outgrow SNAPSHOT_MIN_BYTES and
 *   the last snapshot, the document (serialised in the same tick as the
 *   batch it covers was drained) goes to the object store DROVER_SNAPSHOTS
 *   with the stream sequence it covers, and the stream is purged up to it.
 *   An object, not a message: a document is bigger than max_payload.
 * - open() loads the latest snapshot and replays the messages after it.
 *
 * A publish that nobody answers for RIDE_THROUGH_MS (the cluster lost its
 * quorum, the connection is down), or that is refused, makes the store unhealthy, as a failing disk does the
 * lowdb store: flush waiters are told, nothing is lost from memory (the
 * batches not published wait, in order, under their message ids) and it
 * tries again by itself, with the backoff of durable-writes.ts.
 *
 * Run logs and fleet samples go to streams of their own (jetstream-logs.ts,
 * jetstream-samples.ts); the local files in the data dir are their caches.
 */
import { headers, nuid } from '@nats-io/nats-core';
import type { NatsConnection } from '@nats-io/nats-core';
import { DeliverPolicy, jetstream, jetstreamManager, JetStreamApiError, StorageType, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Objm, type ObjectStore } from '@nats-io/obj';
import type { Logger } from '../log.js';
import { nodeDisk } from './disk.js';
import { DocumentStore, type Change, type Doc } from './state-document.js';
import { DurableWrites } from './durable-writes.js';
import { StoreError, type FleetSample, type LogRecord, type Store, type StoreHealth } from './store.js';
import { JetStreamLogs } from './jetstream-logs.js';
import { JetStreamSamples } from './jetstream-samples.js';
import { isNoResponders, isTemporarilyUnavailable, isTimeout, whileElecting } from './jetstream-retry.js';

/** The stream that holds the change batches, and its one subject (under drover.v1.state.>, which only the control plane's NATS user may publish on). */
export const STATE_STREAM = 'DROVER_STATE';
export const STATE_SUBJECT = 'drover.v1.state.changes';
/** The object store bucket of whole documents, and the object's name. */
export const SNAPSHOT_BUCKET = 'DROVER_SNAPSHOTS';
const SNAPSHOT_OBJECT = 'state';

/** A snapshot is taken once the batches since the last one are bigger than this and than that snapshot: a restart replays at most about this much. */
const SNAPSHOT_MIN_BYTES = 16 * 1024 * 1024;
/** How long one publish waits for the stream's ack (then it is tried again under the same message id, for RIDE_THROUGH_MS). */
const PUBLISH_TIMEOUT_MS = 5_000;
/** JetStream's error code for a publish whose expected last sequence is not the stream's: another writer appended. */
const WRONG_LAST_SEQUENCE = 10071;
/**
 * How long one publish is tried again while nobody answers before the store
 * turns unhealthy: longer than a stream leader election after a server
 * dies (nats-server's Raft elects within about 10 s), shorter than an
 * agent's patience.
 */
const RIDE_THROUGH_MS = 15_000;
/** The id of the empty first message of a new stream (genesis()). */
const GENESIS_ID = 'drover-state-genesis';
/** Room left in each message for headers (message id, expected sequence). */
const HEADER_ROOM = 1024;

export interface JetStreamStoreOptions {
  nc: NatsConnection;
  /** Holds the caches of the run logs and fleet samples (and the logs' cursor file). */
  dataDir: string;
  /** Replicas of the stream and the object store (3 for a cluster; 1 for a single nats-server). */
  replicas?: number;
  coalesceMs?: number;
  maxRuns?: number;
  snapshotMinBytes?: number;
  publishTimeoutMs?: number;
  /** How long a publish nobody answers is retried before the store turns unhealthy (RIDE_THROUGH_MS). */
  rideThroughMs?: number;
  /** The log stream's limits (jetstream-logs.ts: LOG_STREAM_MAX_AGE_MS, LOG_STREAM_MAX_BYTES). */
  logMaxAgeMs?: number;
  logMaxBytes?: number;
  log?: Logger;
  /** Told how long each durable write took, in seconds. */
  onWrite?: (seconds: number) => void;
  /**
   * The leader lease of a replicated control plane (control-plane/leadership/lease.ts):
   * open() first appends a takeover marker carrying its epoch (after which a
   * deposed leader's write is refused as FENCED), every batch carries the
   * epoch in a Drover-Epoch header, and nothing is published once the lease
   * ran out by this replica's clock. Absent: a single control plane.
   */
  leadership?: { readonly epoch: number; valid(): boolean };
  /** Told once when the stream refuses a write because another writer appended (FENCED) or the lease ran out: this replica no longer leads. */
  onFenced?: (reason: string) => void;
}

/** The header that carries the writer's fencing epoch on every state message. */
export const EPOCH_HEADER = 'Drover-Epoch';

/** A write not attempted because this replica's leader lease ran out. */
export class LeaseLostError extends Error {
  override name = 'LeaseLostError';
}

/** JetStream refused a batch as out of order, but shows no other writer: a stream leader without its quorum. Retried like a timeout. */
class UnsureOrderError extends Error {
  override name = 'UnsureOrderError';
  readonly code = 'NO_QUORUM';
  constructor(cause: Error) {
    super(`JetStream refused the state batch as out of order (${cause.message}) but holds no message after the last one this control plane wrote: a stream leader that lost its quorum (is a majority of the NATS cluster up?)`, { cause });
  }
}

/** A batch drained but not yet acknowledged by the stream. */
interface Pending {
  id: string;
  text: string;
}

const WHERE = `NATS JetStream (stream ${STATE_STREAM})`;
const FIX = "bring back a majority of the NATS cluster's servers (JetStream needs a quorum of the stream's replicas) and check the control plane's NATS connection";

export class JetStreamStore extends DocumentStore implements Store {
  private readonly nc: NatsConnection;
  private readonly replicas: number;
  private readonly snapshotMinBytes: number;
  private readonly publishTimeoutMs: number;
  private readonly rideThroughMs: number;
  private readonly logger: Logger | undefined;
  private readonly writes: DurableWrites;
  private js!: JetStreamClient;
  private jsm!: JetStreamManager;
  private objects!: ObjectStore;
  /** The stream's last sequence as this writer knows it: every publish expects it. */
  private lastSeq = 0;
  private pending: Pending[] = [];
  /** Bytes published since the last snapshot, and that snapshot's size. */
  private sinceSnapshot = 0;
  private snapshotBytes = 0;
  private readonly leadership: JetStreamStoreOptions['leadership'];
  private readonly onFenced: JetStreamStoreOptions['onFenced'];
  private fenced = false;
  private readonly streamLogs: JetStreamLogs;
  private readonly streamSamples: JetStreamSamples;

  constructor(opts: JetStreamStoreOptions) {
    nodeDisk.mkdirSync(opts.dataDir, 0o700);
    super({ dataDir: opts.dataDir, disk: nodeDisk, log: opts.log, maxRuns: opts.maxRuns ?? 1000 });
    this.nc = opts.nc;
    this.replicas = opts.replicas ?? 3;
    this.snapshotMinBytes = opts.snapshotMinBytes ?? SNAPSHOT_MIN_BYTES;
    this.publishTimeoutMs = opts.publishTimeoutMs ?? PUBLISH_TIMEOUT_MS;
    this.rideThroughMs = opts.rideThroughMs ?? RIDE_THROUGH_MS;
    this.logger = opts.log;
    this.leadership = opts.leadership;
    this.onFenced = opts.onFenced;
    const streams = { nc: opts.nc, replicas: this.replicas, publishTimeoutMs: this.publishTimeoutMs, rideThroughMs: this.rideThroughMs, log: opts.log };
    this.streamLogs = new JetStreamLogs({ ...streams, logs: this.logs, dataDir: opts.dataDir, maxAgeMs: opts.logMaxAgeMs, maxBytes: opts.logMaxBytes });
    this.streamSamples = new JetStreamSamples({ ...streams, samples: this.samples });
    this.writes = new DurableWrites({
      coalesceMs: opts.coalesceMs ?? 10,
      log: opts.log,
      onWrite: opts.onWrite,
      write: () => this.writeOnce(),
      backlog: () => this.pending.length > 0,
      unhealthy: (err, sinceMs) => {
        const { code, message } = describeNatsError(err);
        return {
          state: { healthy: false, dir: '', where: WHERE, fix: FIX, code, message, sinceMs },
          fields: { stream: STATE_STREAM, code, err: message, pendingBatches: this.pending.length },
          message: `cannot write the state to ${WHERE} (${code}: ${message}); new runs are refused and agents' messages stay unacknowledged until a publish succeeds; retrying by itself`,
        };
      },
      recovered: { fields: { stream: STATE_STREAM }, message: 'NATS JetStream takes the state again; taking new runs and acknowledging agents again' },
    });
  }

  /** Makes (or binds) the stream and the object store, loads the latest snapshot and replays what came after it. */
  async open(): Promise<string> {
    this.samples.open();
    try {
      // Asks for the account's JetStream info: "temporarily unavailable" while the cluster elects its meta leader.
      this.jsm = await this.whileElecting(() => jetstreamManager(this.nc, { timeout: this.publishTimeoutMs }));
      this.js = jetstream(this.nc, { timeout: this.publishTimeoutMs });
      await this.whileElecting(() => this.ensureStream());
      this.objects = await this.whileElecting(() => new Objm(this.nc).create(SNAPSHOT_BUCKET, { storage: StorageType.File, replicas: this.replicas, description: 'drover control-plane state snapshots' }));
      // Adopting a snapshot again replaces the document: safe to repeat.
      const covered = await this.whileElecting(() => this.loadSnapshot());
      const last = (await this.whileElecting(() => this.jsm.streams.info(STATE_STREAM))).state.last_seq;
      let replayed = await this.replayFrom(covered + 1, last);
      this.lastSeq = last;
      if (this.leadership) replayed += await this.takeOver();
      this.recount();
      // After the state: the caches of runs it no longer has are dropped.
      await this.streamLogs.open(this.js, this.jsm, (id) => !!this.doc.runs[id]);
      await this.streamSamples.open(this.js, this.jsm);
      this.logger?.info({ stream: STATE_STREAM, snapshotSeq: covered, replayed, lastSeq: this.lastSeq, replicas: this.replicas, epoch: this.leadership?.epoch }, 'state loaded from NATS JetStream');
    } catch (err) {
      if (err instanceof StoreError) throw err;
      throw new StoreError(
        `cannot load the state from ${WHERE} on ${this.nc.getServer()}: ${(err as Error).message}; check that the NATS servers run JetStream (in operator mode, with the account JWT from \`drover server nats-config\`), that a majority of them is up, and that --store-replicas (${this.replicas}) is not more than the servers in the cluster`,
        { cause: err },
      );
    }
    return '';
  }

  /**
   * Runs `fn` again while JetStream answers that it is electing a leader
   * (a cluster just started, or a server just lost), for rideThroughMs:
   * a control plane started beside its NATS cluster waits for it instead
   * of failing. `fn` must be safe to repeat.
   */
  private whileElecting<T>(fn: () => Promise<T>): Promise<T> {
    return whileElecting(fn, this.rideThroughMs, (err) => this.logger?.warn({ stream: STATE_STREAM, code: describeNatsError(err).code }, 'JetStream is electing a leader; waiting for it'));
  }

  private async ensureStream() {
    const config = { name: STATE_STREAM, subjects: [STATE_SUBJECT], storage: StorageType.File, num_replicas: this.replicas, description: 'drover control-plane state changes' };
    try {
      const info = await this.jsm.streams.info(STATE_STREAM);
      if (info.config.num_replicas !== this.replicas) {
        this.logger?.warn({ stream: STATE_STREAM, replicas: info.config.num_replicas, wanted: this.replicas }, 'the state stream has another replica count than --store-replicas; updating it');
        await this.jsm.streams.update(STATE_STREAM, { num_replicas: this.replicas });
      }
    } catch (err) {
      if (!(err instanceof JetStreamApiError) || err.code !== 10059) throw err; // 10059: stream not found
      await this.jsm.streams.add(config);
    }
    await this.genesis();
  }

  /**
   * JetStream checks no expected last sequence of 0, so the first batch on
   * an empty stream would not be fenced: an empty message with a fixed id
   * takes sequence 1 first. Two writers that open an empty stream at once
   * both send it; the message id makes it one message, so both then expect
   * 1 and the second to append is refused. It carries no changes (replay
   * skips empty lines).
   */
  private async genesis() {
    const info = await this.jsm.streams.info(STATE_STREAM);
    if (info.state.last_seq > 0) return;
    // Expects sequence 0, which JetStream does not check; retried like any batch while the new stream elects its leader.
    await this.publishOne({ id: GENESIS_ID, text: '' });
  }

  /** How the state stream's other NATS replicas keep up with its leader (empty for one replica). */
  async replication(): Promise<{ server: string; current: boolean; lag: number }[]> {
    const info = await this.jsm.streams.info(STATE_STREAM);
    return (info.cluster?.replicas ?? []).map((r) => ({ server: r.name, current: r.current, lag: r.lag ?? 0 }));
  }

  /**
   * Appends the takeover marker: an empty message with this leader's epoch,
   * expecting the last sequence loaded. From then on a deposed leader's
   * publish expects a stale sequence and is refused. A write that slipped in
   * after the load (the old leader's last, sent before its lease ran out) is
   * replayed first and the marker tried again. Returns the changes replayed.
   */
  private async takeOver(): Promise<number> {
    let replayed = 0;
    for (let i = 0; ; i++) {
      try {
        this.lastSeq = await this.publishOne({ id: `drover-epoch-${this.leadership!.epoch}`, text: '' });
        return replayed;
      } catch (err) {
        if (!(err instanceof JetStreamApiError && err.code === WRONG_LAST_SEQUENCE) || i >= 10) throw err;
        const last = (await this.jsm.streams.info(STATE_STREAM)).state.last_seq;
        replayed += await this.replayFrom(this.lastSeq + 1, last);
        this.lastSeq = last;
      }
    }
  }

  /** Adopts the latest snapshot (if any); returns the stream sequence it covers (0: none). */
  private async loadSnapshot(): Promise<number> {
    const info = await this.objects.info(SNAPSHOT_OBJECT);
    if (!info || info.deleted) return 0;
    const data = await this.objects.getBlob(SNAPSHOT_OBJECT);
    if (!data) return 0;
    const doc = JSON.parse(new TextDecoder().decode(data)) as Doc;
    this.adopt(doc);
    this.snapshotBytes = data.length;
    return Number(info.metadata?.seq ?? 0);
  }

  /** Applies the change batches with sequences from `from` to `last`; returns how many changes. */
  private async replayFrom(from: number, last: number): Promise<number> {
    if (from > last) return 0;
    const consumer = await this.js.consumers.get(STATE_STREAM, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from });
    let changes = 0;
    let seq = from - 1;
    const joiner = new LineJoiner();
    try {
      while (seq < last) {
        const batch = await consumer.fetch({ max_messages: 256, expires: this.publishTimeoutMs });
        let got = 0;
        for await (const m of batch) {
          got++;
          seq = m.seq;
          for (const piece of m.string().split('\n')) {
            const line = piece && joiner.feed(piece);
            if (!line) continue;
            this.replay(JSON.parse(line) as Change);
            changes++;
          }
          this.sinceSnapshot += m.data.length;
          if (seq >= last) break;
        }
        if (!got && seq < last) throw new Error(`the stream stopped delivering at sequence ${seq} of ${last}`);
      }
    } finally {
      await consumer.delete().catch(() => undefined);
    }
    return changes;
  }

  health(): StoreHealth {
    return this.writes.health();
  }

  flush(): Promise<void> {
    return this.writes.flush();
  }

  /** One last write and a snapshot if it can; with JetStream unreachable it gives up here (nothing unwritten was acknowledged). The connection is the caller's. */
  async close() {
    await this.writes.finish();
    const health = this.writes.health();
    if (health.healthy && this.sinceSnapshot > 0) await this.snapshot(JSON.stringify(this.doc), this.lastSeq).catch(() => undefined);
    if (!health.healthy) this.logger?.error({ stream: STATE_STREAM, code: health.code }, 'closing with changes not written: NATS JetStream still refuses them; agents resend what was not acknowledged');
    this.writes.rejectWaiting();
    await this.streamLogs.close();
    await this.streamSamples.idle();
    this.logs.close();
    await this.samples.close();
  }

  protected touch() {
    this.writes.touch();
  }

  override appendLog(runId: string, ...records: LogRecord[]) {
    this.streamLogs.queue(runId, records, () => this.logs.end(runId));
    super.appendLog(runId, ...records);
  }

  override logBacklogFull(): boolean {
    return super.logBacklogFull() || this.streamLogs.backlogFull;
  }

  override appendFleetSample(sample: FleetSample) {
    super.appendFleetSample(sample);
    this.streamSamples.publish(sample);
  }

  protected override forgetLog(runId: string) {
    super.forgetLog(runId);
    this.streamLogs.forget(runId);
  }

  /** Publishes the pending batches in order, each expecting the sequence the one before it got. */
  private async publishPending() {
    while (this.pending.length) {
      const p = this.pending[0];
      let seq: number;
      try {
        seq = await this.publishOne(p);
      } catch (err) {
        const found = err instanceof JetStreamApiError && err.code === WRONG_LAST_SEQUENCE ? await this.afterWrongSequence(p.id) : undefined;
        if (found === 'unsure') throw new UnsureOrderError(err as Error);
        if (typeof found !== 'number') {
          const { code, message } = describeNatsError(err);
          if (code === 'FENCED' && !this.fenced) {
            this.fenced = true;
            this.onFenced?.(message);
          }
          throw err;
        }
        seq = found;
      }
      this.lastSeq = seq;
      this.sinceSnapshot += p.text.length;
      this.pending.shift();
    }
  }

  /**
   * Publishes one batch. A publish nobody answered or that timed out is
   * tried again (100 ms, 200 ms, … up to 1 s apart) for `rideThroughMs`
   * before the write counts as failed: when a stream's leader dies, its
   * replicas take some seconds to elect another, during which nobody
   * answers. One server down must cost latency, not an outage.
   */
  private async publishOne(p: Pending): Promise<number> {
    const giveUpAt = Date.now() + this.rideThroughMs;
    const h = headers();
    if (this.leadership) h.set(EPOCH_HEADER, String(this.leadership.epoch));
    for (let i = 1; ; i++) {
      if (this.leadership && !this.leadership.valid()) throw new LeaseLostError(`this control plane's leader lease (epoch ${this.leadership.epoch}) ran out; another replica may lead now`);
      try {
        return (await this.js.publish(STATE_SUBJECT, p.text, { msgID: p.id, expect: { lastSequence: this.lastSeq }, timeout: this.publishTimeoutMs, headers: h })).seq;
      } catch (err) {
        if (!(isNoResponders(err) || isTimeout(err) || isTemporarilyUnavailable(err)) || Date.now() >= giveUpAt) throw err;
        if (i === 1) this.logger?.warn({ stream: STATE_STREAM, code: describeNatsError(err).code }, 'a state publish got no answer; trying again (a stream leader may be being elected)');
        await new Promise((r) => setTimeout(r, Math.min(1000, 100 * i)));
      }
    }
  }

  /**
   * After JetStream refused batch `id` for a wrong last sequence: its
   * sequence when the stream's last message is that batch (a publish whose
   * ack was lost, retried after the duplicate window); 'other' when another
   * writer appended after the last sequence this store wrote (FENCED);
   * 'unsure' when the stream cannot be read or has nothing after it. The
   * last happens while a stream leader has lost its quorum: it still counts
   * the proposal of this batch's earlier try, which never committed, and
   * refuses the retry. That is no other writer: the write is tried again.
   */
  private async afterWrongSequence(id: string): Promise<number | 'other' | 'unsure'> {
    const last = await this.jsm.streams.getMessage(STATE_STREAM, { last_by_subj: STATE_SUBJECT }).catch(() => null);
    if (!last || last.seq <= this.lastSeq) return 'unsure';
    return last.header.get('Nats-Msg-Id') === id ? last.seq : 'other';
  }

  /** Queues a drained batch as messages that fit the server's max_payload. */
  private enqueue(batch: string) {
    if (!batch) return;
    const max = Math.max(4096, (this.nc.info?.max_payload ?? 1024 * 1024) - HEADER_ROOM);
    for (const text of splitLines(batch, max)) this.pending.push({ id: nuid.next(), text });
  }

  /**
   * One write: log files synced, the log records and the drained batch
   * taken (in one tick: the batch never refers to lines it does not carry),
   * the log messages published, then every queued batch; then (once its
   * flushes are told) a snapshot when the batches since the last one
   * outgrew it.
   */
  private async writeOnce(): Promise<(() => Promise<void>) | void> {
    this.prune();
    await this.logs.sync();
    this.streamLogs.take();
    this.enqueue(this.drain());
    // Serialised in the tick the batch was drained: it holds exactly what the pending batches end at.
    const doc = this.sinceSnapshot > Math.max(this.snapshotMinBytes, this.snapshotBytes) ? JSON.stringify(this.doc) : undefined;
    // A replica whose lease ran out publishes no log records either (the state batch would be refused after them).
    if (this.leadership && !this.leadership.valid()) {
      const err = new LeaseLostError(`this control plane's leader lease (epoch ${this.leadership.epoch}) ran out; another replica may lead now`);
      if (!this.fenced) {
        this.fenced = true;
        this.onFenced?.(err.message);
      }
      throw err;
    }
    await this.streamLogs.publish();
    await this.publishPending();
    // Pruned runs' log subjects go once their deletion is in the state stream.
    await this.streamLogs.settle();
    if (!doc) return;
    const seq = this.lastSeq;
    // The changes are durable in the stream already: a snapshot that fails only means a longer replay.
    return () => this.snapshot(doc, seq).catch((err: Error) => this.logger?.warn({ err: err.message, bucket: SNAPSHOT_BUCKET }, 'could not store a state snapshot; the stream keeps every change, so a restart replays more'));
  }

  /** Stores `doc` as covering the stream up to `seq`, then drops the messages it covers. */
  private async snapshot(doc: string, seq: number) {
    // A deposed leader's snapshot would replace a newer one whose messages are purged: only the lease holder takes one, and never over a newer one.
    if (this.leadership && !this.leadership.valid()) return;
    const current = await this.objects.info(SNAPSHOT_OBJECT);
    if (current && !current.deleted && Number(current.metadata?.seq ?? 0) >= seq) return;
    const data = new TextEncoder().encode(doc);
    await this.objects.putBlob({ name: SNAPSHOT_OBJECT, metadata: { seq: String(seq) } }, data, { timeout: this.publishTimeoutMs * 4 });
    this.snapshotBytes = data.length;
    this.sinceSnapshot = 0;
    // Messages before seq+1 are in the snapshot; the stream's last sequence (the fence) stays.
    await this.jsm.streams.purge(STATE_STREAM, { seq: seq + 1 });
    this.logger?.debug({ seq, bytes: data.length }, 'state snapshot stored');
  }

}

/**
 * Cuts JSON lines into pieces of at most `max` bytes, at line ends. A line
 * longer than `max` (a run of a 10,000-agent fan-out is one record of
 * megabytes) goes in parts, each a message of its own: `+part` lines
 * continued by the next, and `=part` ending it. A JSON line starts with
 * `[` or `{`, never with either mark; LineJoiner puts the parts together.
 */
export function splitLines(text: string, max: number): string[] {
  const out: string[] = [];
  let cur = '';
  let curBytes = 0;
  for (const line of text.split('\n')) {
    if (!line) continue;
    const bytes = Buffer.byteLength(line) + 1;
    if (curBytes + bytes > max && cur) {
      out.push(cur);
      cur = '';
      curBytes = 0;
    }
    if (bytes > max) {
      out.push(...lineParts(line, max));
      continue;
    }
    cur += `${line}\n`;
    curBytes += bytes;
  }
  if (cur) out.push(cur);
  return out;
}

/** One line as `+part\n`…`=part\n` pieces of at most `max` bytes (3 bytes a UTF-16 unit at most; a surrogate pair is never cut). */
function lineParts(line: string, max: number): string[] {
  const size = Math.floor((max - 2) / 3);
  if (size < 2) throw new Error(`a state change of ${Buffer.byteLength(line)} bytes cannot be cut into messages of ${max} bytes; raise max_payload in the nats-server configuration`);
  const parts: string[] = [];
  for (let at = 0; at < line.length; ) {
    let end = Math.min(line.length, at + size);
    const last = line.charCodeAt(end - 1);
    if (end < line.length && last >= 0xd800 && last <= 0xdbff) end--;
    parts.push(line.slice(at, end));
    at = end;
  }
  return parts.map((p, i) => `${i === parts.length - 1 ? '=' : '+'}${p}\n`);
}

/**
 * Puts lines cut by splitLines together again, across messages: gives each
 * whole line once. Parts not ended before a whole line (a writer that died
 * between the messages of one batch, never acknowledged) are dropped.
 */
export class LineJoiner {
  private parts: string[] = [];

  feed(line: string): string | undefined {
    const mark = line[0];
    if (mark === '+') return void this.parts.push(line.slice(1));
    if (mark === '=') {
      const whole = this.parts.join('') + line.slice(1);
      this.parts = [];
      return whole;
    }
    this.parts = [];
    return line;
  }
}

/** A stable code and a message for what NATS or JetStream answered. */
export function describeNatsError(err: unknown): { code: string; message: string } {
  if (isNoResponders(err)) return { code: 'NO_RESPONDERS', message: `no JetStream server answered on ${STATE_SUBJECT}: the stream ${STATE_STREAM} has no leader (is a majority of the NATS cluster up?) or JetStream is not enabled for the account` };
  if (err instanceof LeaseLostError) return { code: 'FENCED', message: err.message };
  if (err instanceof JetStreamApiError) {
    if (err.code === WRONG_LAST_SEQUENCE) return { code: 'FENCED', message: `another writer appended to ${STATE_STREAM} (${err.message}): only one control plane may write its state; stop the other one` };
    return { code: `JS_${err.code}`, message: err.message };
  }
  const e = err as { name?: string; code?: string; message?: string };
  const code = typeof e?.code === 'string' && e.code ? e.code : e?.name && e.name !== 'Error' ? e.name : 'NATS_ERROR';
  return { code: code.replace(/Error$/, '').toUpperCase() || 'NATS_ERROR', message: e?.message ?? String(err) };
}
