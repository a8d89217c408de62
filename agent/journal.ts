/**
 * The agent's journal: every message for the control plane gets the next
 * sequence number and is appended to disk before it is sent; it is deleted
 * only once acknowledged. After a reconnect the unacknowledged tail is sent
 * again, in order, read back from disk.
 *
 * Layout: `<dir>/<first seq, 20 digits>.seg` files of records
 *   [u32 payload length][u32 CRC-32 of payload][payload: encoded AgentMessage]
 * Appends are write(2) calls, so a SIGKILL at any moment loses nothing that
 * push() returned for; fdatasync runs every SYNC_MS for power loss. On open, a
 * torn or corrupt record ends the journal there: it and everything after it
 * are discarded (never misread) and the loss is logged.
 *
 * Flow control: at most WINDOW_MESSAGES / WINDOW_BYTES are in flight
 * (sent, not yet acked); the rest waits on disk, so memory stays bounded
 * however long the control plane is away.
 *
 * Bound: past `maxBytes` on disk, new log chunks are dropped (counted in
 * `droppedLogBytes` and reported in heartbeats); step events are always kept.
 *
 * A failing disk (ENOSPC, EIO, EROFS, ...): a failed or short append is cut
 * back to the last whole record, and it and every message after it wait in
 * memory, in order, unsent (nothing is sent that is not on disk), while the
 * append is retried (250 ms doubling to 5 s); once one succeeds they are
 * written and sent, and `onWritable` is called. In memory, log chunks are
 * bounded by PENDING_LOG_BYTES (past it they are dropped and counted, as past
 * `maxBytes`); step events are always kept. push() tells whether the
 * message is on disk: what is only in memory is lost if the agent dies, so
 * callers that record progress elsewhere (the output offsets) wait for true.
 */
import { closeSync, fdatasync, mkdirSync, openSync, readdirSync, readSync, statSync, ftruncateSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { decodeMessage, encodeMessage, type AgentMessage } from '../proto/index.js';
import { MAX_UNACKED_MESSAGES } from '../proto/link.js';
import { streamIn } from './wire.js';

export type Body = Omit<AgentMessage, 'seq'>;

/** Segment size before a new file is started. */
const SEGMENT_BYTES = 4 * 1024 * 1024;
/** A fully acknowledged newest segment is replaced once it is this big. */
const ROTATE_ACKED_BYTES = 64 * 1024;
/** Messages and bytes sent but not yet acknowledged, at most. */
const WINDOW_MESSAGES = MAX_UNACKED_MESSAGES;
const WINDOW_BYTES = 4 * 1024 * 1024;
/** How often appended records are forced to the disk. */
const SYNC_MS = 200;
/** Log chunks kept in memory while the disk fails, at most. */
const PENDING_LOG_BYTES = 8 * 1024 * 1024;
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 5000;
const HEADER = 8;

interface Segment {
  firstSeq: number;
  lastSeq: number;
  path: string;
  bytes: number;
}

export interface JournalReport {
  /** Records found intact on open. */
  recovered: number;
  /** Bytes of torn or corrupt records discarded on open. */
  discardedBytes: number;
}

export class Journal {
  private segments: Segment[] = [];
  private fd = -1;
  private nextSeq = 1;
  private acked = 0;
  private sent = 0;
  private inflight: { seq: number; bytes: number }[] = [];
  private inflightBytes = 0;
  private sender: ((m: AgentMessage) => void) | undefined;
  private reader: { seg: Segment; fd: number; offset: number; seq: number } | undefined;
  private dirty = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private diskBytes = 0;
  /** Numbering jumped (attach): the next record starts a segment, whose records must be consecutive. */
  private freshSegment = false;
  /** Log bytes dropped because the journal was full. */
  droppedLogBytes = 0;
  /**
   * Per attempt id, the highest LogChunk.offset of each stream found on open:
   * where a restarted agent resumes a still-running attempt's output.
   */
  readonly logOffsets = new Map<string, { stdout: number; stderr: number }>();
  /** Messages not on disk yet because the disk failed, in seq order. */
  private pending: { seq: number; payload: Uint8Array; log: boolean }[] = [];
  private pendingLogBytes = 0;
  /** The last append error while messages wait in memory. */
  private failure: Error | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryMs = RETRY_FIRST_MS;
  /** Called when appends succeed again after a failure (what waited is on disk and being sent). */
  onWritable: (() => void) | undefined;
  /** Called once when appends start failing, with the error. */
  onFailing: ((err: Error) => void) | undefined;

  constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
  ) {}

  /** Loads the journal, discarding a torn tail. */
  open(): JournalReport {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const files = readdirSync(this.dir)
      .filter((f) => /^\d{20}\.seg$/.test(f))
      .sort();
    const report: JournalReport = { recovered: 0, discardedBytes: 0 };
    let broken = false;
    for (const f of files) {
      const path = join(this.dir, f);
      if (broken) {
        report.discardedBytes += statSync(path).size;
        unlinkSync(path);
        continue;
      }
      const seg: Segment = { firstSeq: Number(f.slice(0, 20)), lastSeq: 0, path, bytes: 0 };
      const scan = scanSegment(path, (msg) => this.noteOffset(msg));
      report.recovered += scan.count;
      if (scan.goodBytes < scan.size) {
        broken = true;
        report.discardedBytes += scan.size - scan.goodBytes;
        const fd = openSync(path, 'r+');
        ftruncateSync(fd, scan.goodBytes);
        closeSync(fd);
      }
      if (scan.count === 0) {
        unlinkSync(path);
        continue;
      }
      seg.lastSeq = scan.lastSeq;
      seg.bytes = scan.goodBytes;
      this.segments.push(seg);
      this.diskBytes += seg.bytes;
    }
    const last = this.segments[this.segments.length - 1];
    if (last) {
      this.nextSeq = last.lastSeq + 1;
      this.acked = this.segments[0].firstSeq - 1;
      this.fd = openSync(last.path, 'a');
    }
    this.sent = this.acked;
    return report;
  }

  private noteOffset(msg: AgentMessage) {
    const log = msg.log;
    if (!log?.offset) return;
    const o = this.logOffsets.get(log.attemptId as string) ?? { stdout: 0, stderr: 0 };
    const stream = streamIn(log.stream);
    o[stream] = Math.max(o[stream], Number(log.offset));
    this.logOffsets.set(log.attemptId as string, o);
  }

  /** False while appends fail and messages wait in memory. */
  get writable(): boolean {
    return !this.failure;
  }

  /**
   * Appends a message (journaled before it is sent) and sends it when a link
   * is up. True when it is on disk; false when it waits in memory (the disk
   * fails) or was dropped (a log chunk past a bound).
   */
  push(body: Body): boolean {
    const seq = this.nextSeq;
    const msg = { ...body, seq } as AgentMessage;
    const payload = encodeMessage('AgentMessage', msg);
    const dataBytes = (body.log?.data as Uint8Array | undefined)?.length ?? 0;
    if (body.log && (this.diskBytes + payload.length > this.maxBytes || (this.failure && this.pendingLogBytes + payload.length > PENDING_LOG_BYTES))) {
      this.droppedLogBytes += dataBytes;
      return false;
    }
    this.nextSeq++;
    if (this.failure || !this.tryAppend(seq, payload)) {
      this.pending.push({ seq, payload, log: !!body.log });
      if (body.log) this.pendingLogBytes += payload.length;
      return false;
    }
    if (this.sender && this.sent === seq - 1 && this.windowOpen()) this.send(msg, payload.length);
    return true;
  }

  /** Appends, or on failure cuts the segment back to its last whole record and starts retrying. */
  private tryAppend(seq: number, payload: Uint8Array): boolean {
    try {
      this.append(seq, payload);
      return true;
    } catch (err) {
      const seg = this.segments[this.segments.length - 1];
      try {
        if (seg && this.fd >= 0) ftruncateSync(this.fd, seg.bytes);
      } catch {
        // The retry cuts again before it writes (append starts at seg.bytes).
      }
      if (!this.failure) this.onFailing?.(err as Error);
      this.failure = err as Error;
      this.retryTimer ??= setTimeout(() => this.retry(), this.retryMs);
      return false;
    }
  }

  /** Writes what waits in memory, in order; sends it once it is all on disk. */
  private retry() {
    this.retryTimer = undefined;
    while (this.pending.length) {
      const p = this.pending[0];
      if (!this.tryAppendRetry(p.seq, p.payload)) {
        this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
        this.retryTimer = setTimeout(() => this.retry(), this.retryMs);
        return;
      }
      this.pending.shift();
      if (p.log) this.pendingLogBytes -= p.payload.length;
    }
    this.failure = undefined;
    this.retryMs = RETRY_FIRST_MS;
    this.pump();
    this.onWritable?.();
  }

  private tryAppendRetry(seq: number, payload: Uint8Array): boolean {
    const seg = this.segments[this.segments.length - 1];
    try {
      // A cut that failed before: the file may hold a torn record past seg.bytes.
      if (seg && this.fd >= 0) ftruncateSync(this.fd, seg.bytes);
      this.append(seq, payload);
      return true;
    } catch (err) {
      this.failure = err as Error;
      return false;
    }
  }

  /**
   * Called on each Welcome: drop what the control plane applied, resend the
   * rest in order. A control plane that applied more than this journal holds
   * (its tail was torn off on open, or the state dir was restored from a
   * copy) gets new messages numbered above its applied seq, in a new segment:
   * numbered below, they would be taken for duplicates and dropped
   * (docs/protocol.md, rule seq-continue).
   */
  attach(sender: (m: AgentMessage) => void, appliedSeq: number): void {
    this.detach();
    if (appliedSeq >= this.nextSeq && !this.pending.length) {
      this.nextSeq = appliedSeq + 1;
      this.freshSegment = true;
    }
    this.ack(appliedSeq);
    this.sent = Math.max(this.acked, Math.min(appliedSeq, this.nextSeq - 1));
    this.sender = sender;
    this.pump();
  }

  detach(): void {
    this.sender = undefined;
    this.sent = this.acked;
    this.inflight = [];
    this.inflightBytes = 0;
    this.closeReader();
  }

  ack(seq: number): void {
    if (seq <= this.acked) return;
    this.acked = Math.min(seq, this.nextSeq - 1);
    this.sent = Math.max(this.sent, this.acked);
    while (this.inflight.length && this.inflight[0].seq <= this.acked) this.inflightBytes -= this.inflight.shift()!.bytes;
    // Whole segments acknowledged are deleted, except the newest: its last
    // record carries the sequence number a restarted agent continues from.
    while (this.segments.length > 1 && this.segments[0].lastSeq <= this.acked) this.dropOldest();
    this.pump();
  }

  /** Messages not yet acknowledged. */
  get unacked(): number {
    return this.nextSeq - 1 - this.acked;
  }

  get lastAcked(): number {
    return this.acked;
  }

  get bytesOnDisk(): number {
    return this.diskBytes;
  }

  close(): void {
    this.closeReader();
    clearTimeout(this.syncTimer);
    clearTimeout(this.retryTimer);
    if (this.fd >= 0) {
      fdatasync(this.fd, () => undefined);
      closeSync(this.fd);
      this.fd = -1;
    }
  }

  private windowOpen(): boolean {
    return this.inflight.length < WINDOW_MESSAGES && this.inflightBytes < WINDOW_BYTES;
  }

  private send(msg: AgentMessage, bytes: number) {
    this.sent = msg.seq as number;
    this.inflight.push({ seq: this.sent, bytes });
    this.inflightBytes += bytes;
    this.sender!(msg);
  }

  /** Sends journaled messages from disk while the window allows. */
  private pump() {
    while (this.sender && this.sent < this.nextSeq - 1 && this.windowOpen()) {
      const rec = this.readRecord(this.sent + 1);
      if (!rec) return;
      this.send(decodeMessage<AgentMessage>('AgentMessage', rec), rec.length);
    }
  }

  private append(seq: number, payload: Uint8Array) {
    let seg = this.segments[this.segments.length - 1];
    const fullyAcked = seg && seg.lastSeq <= this.acked;
    if (!seg || this.freshSegment || seg.bytes >= SEGMENT_BYTES || (fullyAcked && seg.bytes >= ROTATE_ACKED_BYTES)) {
      const path = join(this.dir, `${String(seq).padStart(20, '0')}.seg`);
      // Opened before anything changes: an open that fails (a full disk) leaves the journal as it was.
      const fd = openSync(path, 'a', 0o600);
      if (this.fd >= 0) closeSync(this.fd);
      this.fd = fd;
      seg = { firstSeq: seq, lastSeq: seq - 1, path, bytes: 0 };
      this.segments.push(seg);
      this.freshSegment = false;
    }
    const header = Buffer.alloc(HEADER);
    header.writeUInt32LE(payload.length, 0);
    header.writeUInt32LE(crc32(payload), 4);
    const record = Buffer.concat([header, payload]);
    const n = writeSync(this.fd, record);
    // A short write is a full disk that has not said so yet.
    if (n < record.length) throw Object.assign(new Error('ENOSPC: no space left on device, short write to the journal'), { code: 'ENOSPC' });
    seg.lastSeq = seq;
    seg.bytes += HEADER + payload.length;
    while (this.segments.length > 1 && this.segments[0].lastSeq <= this.acked) this.dropOldest();
    this.diskBytes += HEADER + payload.length;
    this.dirty = true;
    this.syncTimer ??= setTimeout(() => this.sync(), SYNC_MS);
    this.syncTimer.unref?.();
  }

  private sync() {
    this.syncTimer = undefined;
    if (!this.dirty || this.fd < 0) return;
    this.dirty = false;
    fdatasync(this.fd, () => undefined);
  }

  /** Reads the record with sequence `seq`, moving a sequential cursor over the segments. */
  private readRecord(seq: number): Buffer | undefined {
    const seg = this.segments.find((s) => s.firstSeq <= seq && seq <= s.lastSeq);
    if (!seg) return undefined;
    if (this.reader?.seg !== seg || this.reader.seq > seq) {
      this.closeReader();
      this.reader = { seg, fd: openSync(seg.path, 'r'), offset: 0, seq: seg.firstSeq };
    }
    const r = this.reader;
    // Records sent straight from push() were never read: skip over them.
    while (r.seq < seq) {
      r.offset += HEADER + readHeader(r.fd, r.offset).length;
      r.seq++;
    }
    const { length } = readHeader(r.fd, r.offset);
    const payload = Buffer.alloc(length);
    readSync(r.fd, payload, 0, length, r.offset + HEADER);
    r.offset += HEADER + length;
    r.seq++;
    return payload;
  }

  private dropOldest() {
    const seg = this.segments.shift()!;
    if (this.reader?.seg === seg) this.closeReader();
    unlinkSync(seg.path);
    this.diskBytes -= seg.bytes;
  }

  private closeReader() {
    if (this.reader) closeSync(this.reader.fd);
    this.reader = undefined;
  }
}

function readHeader(fd: number, offset: number): { length: number; crc: number } {
  const h = Buffer.alloc(HEADER);
  readSync(fd, h, 0, HEADER, offset);
  return { length: h.readUInt32LE(0), crc: h.readUInt32LE(4) };
}

/** Counts intact records and finds where the intact prefix ends. */
function scanSegment(path: string, visit: (msg: AgentMessage) => void): { count: number; lastSeq: number; goodBytes: number; size: number } {
  const size = statSync(path).size;
  const fd = openSync(path, 'r');
  let offset = 0;
  let count = 0;
  let lastSeq = 0;
  try {
    while (offset + HEADER <= size) {
      const { length, crc } = readHeader(fd, offset);
      if (length === 0 || offset + HEADER + length > size) break;
      const payload = Buffer.alloc(length);
      readSync(fd, payload, 0, length, offset + HEADER);
      if (crc32(payload) !== crc) break;
      let msg: AgentMessage;
      try {
        msg = decodeMessage<AgentMessage>('AgentMessage', payload);
      } catch {
        break;
      }
      if (count > 0 && (msg.seq as number) !== lastSeq + 1) break;
      lastSeq = msg.seq as number;
      visit(msg);
      count++;
      offset += HEADER + length;
    }
  } finally {
    closeSync(fd);
  }
  return { count, lastSeq, goodBytes: offset, size };
}
