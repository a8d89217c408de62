/**
 * The audit log: `<data-dir>/audit.log`, one JSON line per record, appended
 * only, each chained to the one before by hash (common/audit-chain.ts), with
 * the last seq and hash kept in `audit.head` so a deleted tail shows too.
 *
 * Records are numbered and chained when they are recorded, in order, and
 * written in batches (one append and one fdatasync a batch). A failed write
 * (a full disk) keeps the batch in memory and retries; nothing is skipped, so
 * the chain stays whole. A torn last line from a crash is cut off at start
 * and the cut itself is recorded.
 */
import { createReadStream } from 'node:fs';
import { open, readFile, rename, truncate, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { GENESIS, hashLine, recordLine, verifyChain, type ChainHead, type ChainProblem, type ChainRecord } from '../../common/audit-chain.js';
import type { Logger } from '../log.js';

export type ActorKind = 'token' | 'agent' | 'enroll-token' | 'anonymous' | 'system' | 'webhook' | 'nats';

export interface AuditEvent {
  actor: { kind: ActorKind; id: string };
  /** `Service/Method` for API calls; `secret.read`, `agent.renew`, … for the rest. */
  action: string;
  target?: string;
  /** Peer address. */
  from?: string;
  /** "ok" or an error code. */
  result: string;
  detail?: Record<string, string>;
}

export interface AuditFilter {
  sinceMs?: number;
  actor?: string;
  actionPrefix?: string;
  /** The most recent this many (0: 1000). */
  limit?: number;
}

/** Records waiting for the disk past this are dropped (and counted): memory stays bounded on a disk that never recovers. */
const MAX_PENDING = 100_000;
/** Between tries of a failed write. */
const RETRY_MS = 1_000;
/** How much of the log's end is read at start to find the last record. */
const TAIL_BYTES = 256 * 1024;

export class AuditLog {
  private seq = 0;
  private lastHash = GENESIS;
  private pending: string[] = [];
  private writing: Promise<void> | undefined;
  private retry: NodeJS.Timeout | undefined;
  private dropped = 0;
  private closed = false;
  /** The last record on disk. */
  private written: ChainHead = { seq: 0, hash: GENESIS };
  /** Bytes of a torn last line cut off at start, recorded with the next record. */
  private pendingTorn = 0;
  /** What audit.head said at start, when the log did not end there (records deleted while the control plane was stopped). */
  private headMismatch: ChainHead | undefined;

  private constructor(
    readonly file: string,
    private readonly headFile: string,
    private fh: FileHandle,
    private readonly log: Logger,
  ) {}

  /** Opens (or creates) the log in `dataDir` and reads where its chain ends. */
  static async open(dataDir: string, log: Logger): Promise<AuditLog> {
    const file = join(dataDir, 'audit.log');
    const fh = await open(file, 'a+', 0o600);
    const a = new AuditLog(file, join(dataDir, 'audit.head'), fh, log);
    await a.readTail();
    await a.checkHead();
    return a;
  }

  private async readTail() {
    const size = (await this.fh.stat()).size;
    if (size === 0) return;
    const start = Math.max(0, size - TAIL_BYTES);
    const buf = Buffer.alloc(size - start);
    await this.fh.read(buf, 0, buf.length, start);
    let text = buf.toString('utf8');
    let end = text.length;
    if (!text.endsWith('\n')) {
      const cut = text.lastIndexOf('\n') + 1;
      const tornBytes = Buffer.byteLength(text.slice(cut));
      await truncate(this.file, size - tornBytes);
      text = text.slice(0, cut);
      end = cut;
      this.log.warn({ file: this.file, bytes: tornBytes }, 'audit log ended in a torn record (a crash mid-write); cut it off');
      this.pendingTorn = tornBytes;
    }
    const lines = text.slice(0, end).split('\n').filter(Boolean);
    const last = lines[lines.length - 1];
    if (!last) return;
    try {
      this.seq = (JSON.parse(last) as ChainRecord).seq;
    } catch {
      this.log.error({ file: this.file }, 'the last audit record is not JSON (the log was edited); the chain continues from it and `drover audit verify` will report it');
      this.seq = lines.length;
    }
    this.lastHash = hashLine(last);
    this.written = { seq: this.seq, hash: this.lastHash };
  }

  /** Compares the log's end with audit.head: a log that ends short of it lost records while this process was not running. */
  private async checkHead() {
    let head: ChainHead;
    try {
      head = JSON.parse(await readFile(this.headFile, 'utf8')) as ChainHead;
    } catch {
      return; // a new log, or one from before audit.head existed
    }
    if (head.seq === this.written.seq && head.hash === this.written.hash) return;
    if (head.seq < this.written.seq) return; // the head write after the last batch did not happen (a crash): the log is ahead
    this.headMismatch = head;
    this.log.error({ file: this.file, headSeq: head.seq, logSeq: this.written.seq }, 'the audit log ends before the record audit.head names: records were deleted while the control plane was stopped');
  }

  /** Appends a record (numbered and chained now, on disk after the next batch). */
  record(e: AuditEvent, nowMs = Date.now()): void {
    if (this.pendingTorn) {
      const bytes = this.pendingTorn;
      this.pendingTorn = 0;
      this.record({ actor: { kind: 'system', id: 'control-plane' }, action: 'audit.torn-tail-cut', result: 'ok', detail: { bytes: String(bytes) } }, nowMs);
    }
    if (this.headMismatch) {
      const head = this.headMismatch;
      this.headMismatch = undefined;
      this.record(
        { actor: { kind: 'system', id: 'control-plane' }, action: 'audit.records-missing', result: 'TAMPERED', detail: { headSeq: String(head.seq), logSeq: String(this.seq) } },
        nowMs,
      );
    }
    if (this.pending.length >= MAX_PENDING) {
      this.dropped++;
      if (this.dropped === 1 || this.dropped % 1000 === 0) this.log.error({ dropped: this.dropped }, 'audit records dropped: the audit log cannot be written (is the disk full?)');
      return;
    }
    const rec: ChainRecord = {
      seq: this.seq + 1,
      time: new Date(nowMs).toISOString(),
      actor: e.actor,
      action: e.action,
      target: e.target ?? '',
      from: e.from ?? '',
      result: e.result,
      detail: e.detail,
      prev: this.lastHash,
    };
    const line = recordLine(rec);
    this.seq = rec.seq;
    this.lastHash = hashLine(line);
    this.pending.push(line);
    this.kick();
  }

  private kick() {
    if (this.writing || this.retry || this.closed) return;
    this.writing = this.writeBatch().finally(() => {
      this.writing = undefined;
      if (this.pending.length && !this.retry) this.kick();
    });
  }

  private async writeBatch(): Promise<void> {
    const batch = this.pending;
    if (!batch.length) return;
    this.pending = [];
    const last = batch[batch.length - 1];
    const head: ChainHead = { seq: (JSON.parse(last) as ChainRecord).seq, hash: hashLine(last) };
    let size = -1;
    try {
      size = (await this.fh.stat()).size;
      await this.fh.appendFile(`${batch.join('\n')}\n`);
      await this.fh.datasync();
    } catch (err) {
      // Cut back what part of the batch got in (a full disk mid-append), so the retry appends it once.
      if (size >= 0) await this.fh.truncate(size).catch(() => undefined);
      // Put the batch back in front: order is the chain.
      this.pending = [...batch, ...this.pending];
      this.log.error({ err: (err as Error).message, waiting: this.pending.length }, `audit log write failed; retrying in ${RETRY_MS} ms`);
      this.retry = setTimeout(() => {
        this.retry = undefined;
        this.kick();
      }, RETRY_MS);
      this.retry.unref();
      return;
    }
    this.written = head;
    try {
      await writeFile(`${this.headFile}.tmp`, `${JSON.stringify(head)}\n`, { mode: 0o600 });
      await rename(`${this.headFile}.tmp`, this.headFile);
    } catch (err) {
      // The records are on disk; the next batch writes the head again.
      this.log.error({ err: (err as Error).message }, 'audit.head not updated');
    }
  }

  /** Resolves when everything recorded so far is on disk (or the write failed and waits for a retry). */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }

  /** Records matching `f`, oldest first, the most recent `limit` of them. */
  async list(f: AuditFilter): Promise<{ record: ChainRecord; line: string }[]> {
    await this.flush();
    const limit = f.limit || 1000;
    const out: { record: ChainRecord; line: string }[] = [];
    const rl = createInterface({ input: createReadStream(this.file, 'utf8'), crlfDelay: Infinity });
    for await (const line of rl) {
      let r: ChainRecord;
      try {
        r = JSON.parse(line) as ChainRecord;
      } catch {
        continue;
      }
      if (f.sinceMs && Date.parse(r.time) < f.sinceMs) continue;
      if (f.actor && r.actor?.id !== f.actor) continue;
      if (f.actionPrefix && !r.action?.startsWith(f.actionPrefix)) continue;
      out.push({ record: r, line });
      if (out.length > limit) out.shift();
    }
    return out;
  }

  /** Re-reads the whole file and checks the chain against what this process wrote last. */
  async verify(): Promise<{ records: number; problems: ChainProblem[] }> {
    await this.flush();
    const text = await readFile(this.file, 'utf8');
    return verifyChain(text, this.written);
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    clearTimeout(this.retry);
    await this.fh.close();
  }
}
