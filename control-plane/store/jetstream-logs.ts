/**
 * Run logs of the JetStream store in a stream, so that a control plane on
 * another host (a takeover, a lost data dir) serves every line of every
 * run, once. The local log files (log-files.ts) stay each replica's read
 * cache: reads are synchronous and never wait on the network.
 *
 * - Stream DROVER_LOGS (file storage, the store's replicas), one subject
 *   per run (`drover.v1.logs.<run id>`), bounded by LOG_STREAM_MAX_AGE_MS
 *   and LOG_STREAM_MAX_BYTES (the oldest messages go first).
 * - The records a write carries are taken in the same tick as its state
 *   batch is drained and published before it, one message per run (split
 *   to fit max_payload), each with a message id (a retry is a duplicate,
 *   not a second copy) and a `Drover-Log-At` header: the byte offset of its
 *   first record in the run's log. Offsets are the same on every replica,
 *   because every cache is the records of the stream, in stream order.
 * - A cursor file in the data dir (written atomically, at most every
 *   CURSOR_EVERY_MS and at close) says up to which stream sequence every
 *   message is in the cache, and to which end each run's cache file is
 *   confirmed by the stream. open() first cuts back a cache file longer
 *   than its stream (records a crash left between the local append and the
 *   stream's ack: their agent message was not acknowledged and comes
 *   again), then applies the messages after the cursor. A message whose
 *   offset the cache already passed (a crash between the local append and
 *   the cursor write) is not appended again; a message after a hole (older
 *   messages dropped by the retention limit) gets a notice of the same
 *   size in their place, so offsets still agree.
 * - A pruned run's subject is purged once its deletion is in the state
 *   stream (a purge that fails is tried after the next write; the age
 *   limit drops it at last).
 */
import { join } from 'node:path';
import { headers, nuid, type NatsConnection } from '@nats-io/nats-core';
import { DeliverPolicy, DiscardPolicy, JetStreamApiError, StorageType, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import type { Logger } from '../log.js';
import { describeError, nodeDisk, writeAll, type Disk } from './disk.js';
import { LOG_BACKLOG_MAX_BYTES, type LogFiles } from './log-files.js';
import type { LogRecord } from './store.js';
import { whileElecting } from './jetstream-retry.js';

export const LOG_STREAM = 'DROVER_LOGS';
/** The stream's subjects (under which only the control plane's NATS user may publish: security/nats-auth.ts). */
export const LOG_SUBJECTS = 'drover.v1.logs.>';
/**
 * How long the stream keeps a message: a run's lines older than this are
 * gone from the stream (a replica that had them keeps them in its cache).
 * A month, longer than anyone follows up a run's output.
 */
export const LOG_STREAM_MAX_AGE_MS = 30 * 24 * 3_600_000;
/**
 * Bytes the stream keeps at most (per replica), the oldest messages going
 * first: bounds the servers' disks, and what a takeover on an empty data
 * dir reads (about 100 MB/s on a local network).
 */
export const LOG_STREAM_MAX_BYTES = 8 * 1024 ** 3;
/** The header with the byte offset of a message's first record in its run's log. */
const AT_HEADER = 'Drover-Log-At';
/** The cursor file's name in the data dir. */
const CURSOR_FILE = 'logs-cursor.json';
/** The cursor is written at most this often while writes go on (a restart then reapplies at most this much, by offsets). */
const CURSOR_EVERY_MS = 1_000;
/** Messages asked for at once while catching up. */
const FETCH_MESSAGES = 256;
/** Stream look-ups in flight at once while checking cache files at start. */
const CHECKS_IN_FLIGHT = 32;
/** Room left in each message for headers (message id, offset). */
const HEADER_ROOM = 1024;

/** The subject of a run's log. Run ids are subject-safe (`r-YYMMDD-HHMMSS-hex`); anything else is base64url after a "=". */
export function logSubject(runId: string): string {
  const token = /^[A-Za-z0-9_-]+$/.test(runId) ? runId : `=${Buffer.from(runId).toString('base64url')}`;
  return `drover.v1.logs.${token}`;
}

/** The run id of a log subject (logSubject's inverse). */
export function runOfSubject(subject: string): string {
  const token = subject.slice('drover.v1.logs.'.length);
  return token.startsWith('=') ? Buffer.from(token.slice(1), 'base64url').toString() : token;
}

export interface JetStreamLogsOptions {
  nc: NatsConnection;
  /** The store's log files: the read cache this keeps in step with the stream. */
  logs: LogFiles;
  /** Holds the cursor file. */
  dataDir: string;
  replicas: number;
  /** LOG_STREAM_MAX_AGE_MS and LOG_STREAM_MAX_BYTES by default. */
  maxAgeMs?: number;
  maxBytes?: number;
  publishTimeoutMs: number;
  /** How long a publish nobody answers is retried before the write fails. */
  rideThroughMs: number;
  log?: Logger;
  disk?: Disk;
}

/** A message to publish: records of one run from byte `at`. */
interface Outgoing {
  id: string;
  runId: string;
  at: number;
  text: string;
  seq?: number;
}

/** The cursor file: the stream it was written against (its creation time), the sequence every message up to is applied, and each run's confirmed end. */
interface Cursor {
  stream: string;
  seq: number;
  ends: Record<string, number>;
}

export class JetStreamLogs {
  private js!: JetStreamClient;
  private jsm!: JetStreamManager;
  private readonly disk: Disk;
  private readonly cursorPath: string;
  /** Records appended since the last take, per run: where the first starts, and their lines. */
  private pending = new Map<string, { at: number; lines: string[] }>();
  /** Messages taken and not acknowledged yet, in order (per run, in log order). */
  private outgoing: Outgoing[] = [];
  /** Bytes of records in `pending` and `outgoing`. */
  private waitingBytes = 0;
  /** Sequences of this writer's messages after `seq`, acknowledged. */
  private acked = new Set<number>();
  /** Every message up to this stream sequence is in the cache. */
  private seq = 0;
  /** Per run, the end of its cache file that the stream holds. */
  private ends = new Map<string, number>();
  /** Pruned runs whose subjects are to be purged. */
  private purges = new Set<string>();
  private cursorWrittenMs = 0;
  private cursorDirty = false;
  /** Runs told of (diverged, holes) once each. */
  private warned = new Set<string>();
  /** Whether the state has a run (messages of others are not cached). */
  private known: (runId: string) => boolean = () => true;
  /** The stream's creation time, as the cursor names it. */
  private created = '';

  constructor(private readonly o: JetStreamLogsOptions) {
    this.disk = o.disk ?? nodeDisk;
    this.cursorPath = join(o.dataDir, CURSOR_FILE);
  }

  /** Records about to be appended to the cache; `end` is the run's log end before them (asked only for a run not queued yet). */
  queue(runId: string, records: readonly LogRecord[], end: () => number) {
    let p = this.pending.get(runId);
    if (!p) this.pending.set(runId, (p = { at: end(), lines: [] }));
    for (const r of records) {
      const line = `${JSON.stringify(r)}\n`;
      p.lines.push(line);
      this.waitingBytes += line.length;
    }
  }

  /** Takes what was queued as messages of the next publish: call it in the tick the state batch is drained, so that batch never refers to lines it does not carry. */
  take() {
    const max = Math.max(4096, (this.o.nc.info?.max_payload ?? 1024 * 1024) - HEADER_ROOM);
    for (const [runId, p] of this.pending) {
      const msgs: Outgoing[] = [];
      let at = p.at;
      let text = '';
      let bytes = 0;
      for (const line of p.lines) {
        const n = Buffer.byteLength(line);
        // The write fails (and is tried again) until the server takes bigger messages; other runs' records still go.
        if (n > max) throw new Error(`a log record of ${n} bytes is bigger than the NATS server's max_payload allows (${max} bytes per message with headers); raise max_payload in the nats-server configuration`);
        if (bytes + n > max) {
          msgs.push({ id: nuid.next(), runId, at, text });
          at += bytes;
          text = '';
          bytes = 0;
        }
        text += line;
        bytes += n;
      }
      if (text) msgs.push({ id: nuid.next(), runId, at, text });
      this.outgoing.push(...msgs);
      this.pending.delete(runId);
    }
  }

  /**
   * Whether the records waiting for the stream are past LOG_BACKLOG_MAX_BYTES
   * (it has been unreachable a while): the control plane then stops taking
   * agents' messages, which wait in their journals, instead of growing.
   */
  get backlogFull(): boolean {
    return this.waitingBytes > LOG_BACKLOG_MAX_BYTES;
  }

  /**
   * Publishes the messages taken, each run's in order (runs side by side);
   * throws if any is not acknowledged (those wait, under their ids, for the
   * next write). Messages of another writer found between this one's (a
   * control plane that has not noticed it lost the lead) go to the cache.
   */
  async publish() {
    if (!this.outgoing.length) return;
    const byRun = new Map<string, Outgoing[]>();
    for (const m of this.outgoing) {
      const list = byRun.get(m.runId);
      if (list) list.push(m);
      else byRun.set(m.runId, [m]);
    }
    const results = await Promise.allSettled(
      [...byRun.values()].map(async (msgs) => {
        for (const m of msgs) m.seq = await this.publishOne(m);
      }),
    );
    for (const m of this.outgoing) {
      if (m.seq === undefined) continue;
      if (m.seq > this.seq) this.acked.add(m.seq);
      const end = m.at + Buffer.byteLength(m.text);
      if (end > (this.ends.get(m.runId) ?? 0)) this.ends.set(m.runId, end);
    }
    this.outgoing = this.outgoing.filter((m) => m.seq === undefined);
    this.recountWaiting();
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    this.cursorDirty = true;
    while (this.acked.delete(this.seq + 1)) this.seq++;
    if (!this.acked.size) return;
    // Holes between this writer's messages: another writer's. Its records go to the cache like any message's.
    const last = Math.max(...this.acked);
    this.o.log?.warn({ stream: LOG_STREAM, from: this.seq + 1, to: last }, 'another writer published run logs between this control plane\'s messages; taking them into the local cache');
    const ours = new Set(this.acked);
    await this.applyFrom(this.seq + 1, last, ours);
    this.acked.clear();
    this.seq = last;
  }

  /** A pruned run: what waits for it is dropped, and its subject is purged after the next write. */
  forget(runId: string) {
    this.pending.delete(runId);
    this.outgoing = this.outgoing.filter((m) => m.runId !== runId);
    this.recountWaiting();
    this.ends.delete(runId);
    this.purges.add(runId);
    this.cursorDirty = true;
  }

  /** After a write whose state batch is in the stream: pruned runs' subjects are purged; the cursor is written when due. Never throws. */
  async settle() {
    for (const runId of [...this.purges]) {
      try {
        await this.jsm.streams.purge(LOG_STREAM, { filter: logSubject(runId) });
        this.purges.delete(runId);
      } catch (err) {
        this.o.log?.warn({ stream: LOG_STREAM, run: runId, err: (err as Error).message }, 'could not purge a pruned run\'s log from the stream; trying again after the next write (its age limit drops it at last)');
        break;
      }
    }
    if (this.cursorDirty && Date.now() - this.cursorWrittenMs >= CURSOR_EVERY_MS) await this.writeCursor().catch(() => undefined);
  }

  /**
   * Makes (or binds) the stream, cuts back cache files the stream does not
   * confirm, and applies the messages the cache lacks. `known` says whether
   * the state has a run (the caches of others are removed).
   */
  async open(js: JetStreamClient, jsm: JetStreamManager, known: (runId: string) => boolean) {
    this.js = js;
    this.jsm = jsm;
    this.known = known;
    const started = Date.now();
    this.created = await this.retry(() => this.ensureStream());
    let cursor = this.readCursor();
    if (cursor && cursor.stream !== this.created) {
      // The stream was deleted and made again: this cache is of another one.
      this.o.log?.warn({ stream: LOG_STREAM, file: this.cursorPath }, 'the log stream is not the one the local log cache was made from; the cache is dropped and filled again');
      for (const runId of this.o.logs.runIds()) this.o.logs.remove(runId);
      cursor = { stream: this.created, seq: 0, ends: {} };
    }
    // No cursor: a new data dir, or one a version that kept logs only locally left (its logs are kept and published).
    const legacy = !cursor;
    cursor ??= { stream: this.created, seq: 0, ends: {} };
    this.seq = cursor.seq;
    let full = false;
    const local = new Set(this.o.logs.runIds());
    const unpublished: string[] = [];
    for (const runId of Object.keys(cursor.ends)) {
      // A confirmed cache file that is gone: the cache lost data, so every message is looked at again.
      if (known(runId) && !local.has(runId) && cursor.ends[runId] > 0) full = true;
    }
    const toCheck: string[] = [];
    for (const runId of local) {
      if (!known(runId)) {
        this.o.logs.remove(runId);
        continue;
      }
      const size = this.o.logs.end(runId);
      if (size === cursor.ends[runId]) this.ends.set(runId, size);
      else toCheck.push(runId);
    }
    let cut = 0;
    for (let i = 0; i < toCheck.length; i += CHECKS_IN_FLIGHT) {
      const found = await Promise.all(toCheck.slice(i, i + CHECKS_IN_FLIGHT).map((runId) => this.retry(() => this.jsm.streams.getMessage(LOG_STREAM, { last_by_subj: logSubject(runId) }))));
      for (const [j, last] of found.entries()) {
        const runId = toCheck[i + j];
        const size = this.o.logs.end(runId);
        if (!last && legacy) {
          if (size > 0) unpublished.push(runId);
          this.ends.set(runId, size);
          continue;
        }
        const confirmed = last ? Number(last.header?.get(AT_HEADER) ?? 0) + last.data.length : (cursor.ends[runId] ?? 0);
        if (size > confirmed) {
          this.o.log?.warn({ stream: LOG_STREAM, run: runId, bytes: size - confirmed, at: confirmed }, 'cut log records the stream never acknowledged off the local cache (a crash before the ack); their agent message was not acknowledged and comes again');
          await this.o.logs.cutTo(runId, confirmed);
          cut++;
        } else if (size < confirmed && last && last.seq <= this.seq) full = true;
        this.ends.set(runId, Math.min(size, confirmed));
      }
    }
    const info = await this.retry(() => this.jsm.streams.info(LOG_STREAM));
    const from = full ? 1 : this.seq + 1;
    const applied = await this.applyFrom(Math.max(from, info.state.first_seq), info.state.last_seq);
    this.seq = Math.max(this.seq, info.state.last_seq);
    await this.o.logs.sync();
    await this.writeCursor();
    // Logs of a version that kept them only locally: published with the next write.
    for (const runId of unpublished) this.queue(runId, this.o.logs.read(runId), () => 0);
    if (unpublished.length) this.o.log?.info({ stream: LOG_STREAM, runs: unpublished.length }, 'run logs kept only in this data dir so far go to the log stream with the next write');
    this.o.log?.info({ stream: LOG_STREAM, from, lastSeq: this.seq, messages: applied, checked: toCheck.length, cut, ms: Date.now() - started }, 'run logs caught up from NATS JetStream');
  }

  /** The last cursor write (the cache is synced by the store's write before it). */
  async close() {
    if (this.cursorDirty) await this.writeCursor().catch(() => undefined);
  }

  /** Makes or updates the stream; returns its creation time. */
  private async ensureStream(): Promise<string> {
    const limits = { max_age: nanos(this.o.maxAgeMs ?? LOG_STREAM_MAX_AGE_MS), max_bytes: this.o.maxBytes ?? LOG_STREAM_MAX_BYTES, num_replicas: this.o.replicas };
    try {
      const info = await this.jsm.streams.info(LOG_STREAM);
      const c = info.config;
      if (c.num_replicas !== limits.num_replicas || c.max_age !== limits.max_age || c.max_bytes !== limits.max_bytes) {
        this.o.log?.warn({ stream: LOG_STREAM, replicas: c.num_replicas, maxAge: c.max_age, maxBytes: c.max_bytes, wanted: limits }, 'the log stream has other limits or replicas than configured; updating it');
        await this.jsm.streams.update(LOG_STREAM, limits);
      }
      return info.created;
    } catch (err) {
      if (!(err instanceof JetStreamApiError) || err.code !== 10059) throw err; // 10059: stream not found
      return (await this.jsm.streams.add({ name: LOG_STREAM, subjects: [LOG_SUBJECTS], storage: StorageType.File, discard: DiscardPolicy.Old, description: 'drover run logs, one subject per run', ...limits })).created;
    }
  }

  private async publishOne(m: Outgoing): Promise<number> {
    const h = headers();
    h.set(AT_HEADER, String(m.at));
    const ack = await this.retry(() => this.js.publish(logSubject(m.runId), m.text, { msgID: m.id, headers: h, timeout: this.o.publishTimeoutMs }));
    return ack.seq;
  }

  /** Applies the messages with sequences from `from` to `last` to the cache, but those in `skip`; returns how many it applied. */
  private async applyFrom(from: number, last: number, skip?: Set<number>): Promise<number> {
    if (from > last) return 0;
    const consumer = await this.retry(() => this.js.consumers.get(LOG_STREAM, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from }));
    let seq = from - 1;
    let applied = 0;
    try {
      // All of them purged: nothing to wait a fetch's expiry for.
      if (!(await consumer.info()).num_pending) return 0;
      while (seq < last) {
        const batch = await consumer.fetch({ max_messages: FETCH_MESSAGES, expires: this.o.publishTimeoutMs });
        let got = 0;
        for await (const m of batch) {
          got++;
          seq = m.seq;
          if (!skip?.has(m.seq)) {
            this.apply(runOfSubject(m.subject), Number(m.headers?.get(AT_HEADER) ?? 0), m.string());
            applied++;
          }
          // Nothing pending after it: the end (the last sequences may have been purged).
          if (seq >= last || m.info.pending === 0) {
            seq = last;
            break;
          }
        }
        if (!got) break;
      }
    } finally {
      await consumer.delete().catch(() => undefined);
    }
    return applied;
  }

  /** One message into the cache, by its offset (the file's header says why). */
  private apply(runId: string, at: number, text: string) {
    const lines = text.match(/[^\n]*\n/g) ?? [];
    if (!lines.length || !this.known(runId)) return;
    const records = lines.map((l) => JSON.parse(l) as LogRecord);
    const end = this.o.logs.end(runId);
    let from = 0;
    if (at > end) {
      this.fillHole(runId, end, at, records[0].t);
    } else if (at < end) {
      // The cache has the start of it already (a crash before the cursor write): the records it has are skipped.
      let bytes = 0;
      while (from < lines.length && at + bytes < end) bytes += Buffer.byteLength(lines[from++]);
      // All of it before the cache's end, or its first records exactly up to it; never a record cut across it.
      if (at + bytes > end || !this.holds(runId, at, lines.slice(0, from))) {
        this.warnOnce(runId, { stream: LOG_STREAM, run: runId, at, end }, 'a run log in the stream does not match the local cache (two control planes wrote it?); its records are appended after what the cache has');
        from = 0;
      }
    }
    if (from < records.length) this.o.logs.append(runId, ...records.slice(from));
    this.ends.set(runId, this.o.logs.end(runId));
    this.cursorDirty = true;
  }

  /** Whether the cache holds exactly `lines` from byte `at`. */
  private holds(runId: string, at: number, lines: string[]): boolean {
    let i = 0;
    for (let pos = at; i < lines.length; ) {
      const page = this.o.logs.page(runId, { from: pos, limit: lines.length - i });
      if (!page.records.length) return false;
      for (const r of page.records) if (`${JSON.stringify(r)}\n` !== lines[i++]) return false;
      pos = page.next;
    }
    return true;
  }

  /**
   * Messages before this one are gone from the stream (its retention
   * limit): a notice of exactly the missing bytes takes their place, so
   * this cache's offsets stay those of the stream.
   */
  private fillHole(runId: string, end: number, at: number, t: number) {
    const bytes = at - end;
    const notice: LogRecord = { t, step: '', attempt: '', agent: '', stream: 'stderr', text: `[drover: ${bytes} bytes of this run's log were dropped by the log stream's retention limit before this control plane read them]\n` };
    let size = Buffer.byteLength(`${JSON.stringify(notice)}\n`);
    if (size > bytes) {
      notice.text = '\n';
      size = Buffer.byteLength(`${JSON.stringify(notice)}\n`);
    }
    this.warnOnce(runId, { stream: LOG_STREAM, run: runId, bytes }, 'part of a run log was dropped by the log stream\'s retention limit before this control plane read it');
    if (size > bytes) return;
    notice.text = `${notice.text.slice(0, -1)}${' '.repeat(bytes - size)}\n`;
    this.o.logs.append(runId, notice);
  }

  private recountWaiting() {
    this.waitingBytes = this.outgoing.reduce((n, m) => n + m.text.length, 0);
    for (const p of this.pending.values()) for (const l of p.lines) this.waitingBytes += l.length;
  }

  private warnOnce(runId: string, fields: Record<string, unknown>, message: string) {
    if (this.warned.has(runId)) return;
    this.warned.add(runId);
    this.o.log?.warn(fields, message);
  }

  /** The cursor file (undefined: there is none). One that cannot be read confirms nothing: every cache file is checked. */
  private readCursor(): Cursor | undefined {
    try {
      const c = JSON.parse(this.disk.readFileSync(this.cursorPath).toString('utf8')) as Cursor;
      if (typeof c?.seq === 'number' && typeof c.stream === 'string' && c.ends && typeof c.ends === 'object') return c;
      this.o.log?.warn({ file: this.cursorPath }, 'the log cursor file is not one; the local log cache is checked against the stream from its start');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      this.o.log?.warn({ file: this.cursorPath, ...describeError(err) }, 'cannot read the log cursor file; the local log cache is checked against the stream from its start');
    }
    return { stream: this.created, seq: 0, ends: {} };
  }

  /** Temp file, fsync, rename: a reader sees the old cursor or the new one. An old one is safe (it is behind). */
  private async writeCursor() {
    const cursor: Cursor = { stream: this.created, seq: this.seq, ends: Object.fromEntries(this.ends) };
    const tmp = `${this.cursorPath}.tmp`;
    try {
      const fd = await this.disk.open(tmp, 'w', 0o600);
      try {
        await writeAll(this.disk, fd, Buffer.from(JSON.stringify(cursor)));
        await this.disk.fsync(fd);
      } finally {
        await this.disk.close(fd);
      }
      await this.disk.rename(tmp, this.cursorPath);
      this.cursorDirty = false;
      this.cursorWrittenMs = Date.now();
    } catch (err) {
      this.o.log?.warn({ file: this.cursorPath, ...describeError(err) }, 'cannot write the log cursor file; a restart checks more of the local log cache against the stream');
      throw err;
    }
  }

  private retry<T>(fn: () => Promise<T>): Promise<T> {
    return whileElecting(fn, this.o.rideThroughMs, (err) => this.o.log?.warn({ stream: LOG_STREAM, err: (err as Error).message }, 'JetStream is electing a leader for the log stream; waiting for it'));
  }
}
