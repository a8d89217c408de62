/**
 * Run logs as one NDJSON file per run (`<dir>/<runId>.ndjson`), kept out of
 * the state document so a chatty step never makes state writes bigger.
 *
 * A record is in memory until it is durable. `append` queues it and writes
 * the file's queue at once (ordered, cheap); `sync()` writes what is still
 * queued, fdatasyncs, and throws while any record is not durable, so the
 * store's write fails and no agent message is acknowledged before its lines
 * are on disk.
 *
 * Failing disks (ENOSPC, EIO, EPERM, EROFS, …) never tear a record into the
 * next one: each file's good length is tracked, and after a failed or short
 * write, or a failed fdatasync (whose pages the kernel may have dropped),
 * the file is cut back to it and the records after it are queued again, in
 * order; a cut that fails too is retried before the next write. A torn tail
 * left by a crash is cut when the file is first opened for appending.
 *
 * Reading is by pages from a position (log-page.ts), through an offset
 * index per run kept in memory (log-index.ts), never a whole-file read.
 * A record's position is its byte offset: a record waiting in memory has
 * the one it will have in the file, so positions hold across failed writes
 * and their retries. Reading reports an unreadable record as a notice line,
 * never skips it.
 */
import { join } from 'node:path';
import { describeError, nodeDisk, tornTailBytes, type Disk } from './disk.js';
import { LogIndex } from './log-index.js';
import { fileExtent, readPage } from './log-page.js';
import type { LogPage, LogRead, LogRecord } from './store.js';

/** Descriptors kept open at most; the least recently used whole file is closed past this. */
const MAX_OPEN_FILES = 256;

/**
 * Bytes of records kept in memory waiting for the disk, past which
 * `backlogFull` says so: the control plane then stops taking agents'
 * messages (they wait in the agents' journals) instead of growing further.
 */
export const LOG_BACKLOG_MAX_BYTES = 64 * 1024 * 1024;

interface OpenLog {
  fd: number;
  /** Bytes known durable: fdatasynced, or found whole at open. */
  durable: number;
  /** Bytes of whole records written (durable + written). */
  size: number;
  /** Records written since the last fdatasync (they are between durable and size). */
  written: Buffer[];
  /** Records not written yet, in order. */
  queued: Buffer[];
  /** A failed cut left bytes past `size`: cut them before writing again. */
  cutDue: boolean;
}

export interface LogFilesOptions {
  disk?: Disk;
  /** Told once per file and problem (an unreadable record, a torn tail cut). */
  warn?: (fields: Record<string, unknown>, message: string) => void;
}

export class LogFiles {
  private files = new Map<string, OpenLog>();
  /** Per run, kept while the run is (files come and go with MAX_OPEN_FILES). */
  private indexes = new Map<string, LogIndex>();
  private readonly disk: Disk;
  private readonly warn: NonNullable<LogFilesOptions['warn']>;
  private warned = new Set<string>();
  /** Bytes of records not yet durable, all files. */
  private pending = 0;
  /** The last write error while any record is not durable. */
  private failure: unknown;

  constructor(
    private readonly dir: string,
    opts: LogFilesOptions = {},
  ) {
    this.disk = opts.disk ?? nodeDisk;
    this.warn = opts.warn ?? (() => undefined);
    this.disk.mkdirSync(dir, 0o700);
  }

  path(runId: string) {
    return join(this.dir, `${runId}.ndjson`);
  }

  /** Bytes of log records waiting to be durable. */
  get pendingBytes(): number {
    return this.pending;
  }

  get backlogFull(): boolean {
    return this.pending > LOG_BACKLOG_MAX_BYTES;
  }

  /** Queues records and writes them now, in one write(2), if the disk lets it; never throws. */
  append(runId: string, ...records: LogRecord[]) {
    const lines = records.map((r) => `${JSON.stringify(r)}\n`);
    const data = Buffer.from(lines.join(''));
    let f = this.files.get(runId);
    if (f) this.files.delete(runId); // re-inserted below: the map's order is least recently used first
    else f = { fd: -1, durable: 0, size: 0, written: [], queued: [], cutDue: false };
    this.files.set(runId, f);
    f.queued.push(data);
    this.pending += data.length;
    this.writeQueued(runId, f);
    // Indexed when written; records that wait for the disk are indexed by the next read that passes them.
    if (!f.queued.length) {
      let at = f.size - data.length;
      const index = this.indexOf(runId);
      for (const [i, r] of records.entries()) {
        const bytes = Buffer.byteLength(lines[i]);
        index.add(at, bytes, r);
        at += bytes;
      }
    }
    this.evict();
  }

  /**
   * Records of a run from a position, in order, filtered while read, at most
   * a page (log-page.ts): what the file holds, then what waits in memory. An
   * unreadable line becomes a stderr notice in its place, naming the byte
   * offset and the file, and is logged once.
   */
  page(runId: string, read: LogRead = {}): LogPage {
    const f = this.files.get(runId);
    const queued = f?.queued ?? [];
    const notice = (at: number, line: string, before: LogRecord | undefined) => this.notice(this.path(runId), at, line, before);
    // Bytes past the whole records written are a failed write not cut back yet, not a record.
    if (f && f.fd >= 0) return readPage({ disk: this.disk, fd: f.fd, whole: f.size, torn: 0, queued, notice }, this.indexOf(runId), read);
    let fd: number;
    try {
      fd = this.disk.openSync(this.path(runId), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return readPage({ disk: this.disk, fd: -1, whole: 0, torn: 0, queued, notice }, this.indexOf(runId), read);
    }
    try {
      return readPage({ disk: this.disk, fd, ...fileExtent(this.disk, fd), queued, notice }, this.indexOf(runId), read);
    } finally {
      this.disk.closeSync(fd);
    }
  }

  /** Every record of a run, page by page. */
  read(runId: string): LogRecord[] {
    const out: LogRecord[] = [];
    for (let from = 0; ; ) {
      const page = this.page(runId, { from });
      out.push(...page.records);
      if (page.next >= page.size) return out;
      from = page.next;
    }
  }

  /** Per agent, the highest message seq in a run's log; the first call after a restart completes the index, reading the file once a page at a time. */
  seqs(runId: string): Map<string, number> {
    const index = this.indexOf(runId);
    for (let from = index.end; ; ) {
      const page = this.page(runId, { from, limit: Infinity });
      if (page.next >= page.size) break;
      from = page.next;
    }
    return new Map(index.seqs);
  }

  /** Writes what is queued and makes every record so far durable; throws (the last error) while any is not. */
  async sync() {
    for (const [runId, f] of this.files) if (f.queued.length || f.cutDue) this.writeQueued(runId, f);
    await Promise.all(
      [...this.files.values()].filter((f) => f.written.length).map(async (f) => {
        const size = f.size;
        const count = f.written.length;
        try {
          await this.disk.fdatasync(f.fd);
        } catch (err) {
          // The kernel may have dropped those pages and will not say so twice: write them again.
          this.failure = err;
          f.queued.unshift(...f.written);
          f.written = [];
          f.size = f.durable;
          this.cut(f);
          return;
        }
        if (f.durable >= size) return;
        f.durable = size;
        for (const r of f.written.splice(0, count)) this.pending -= r.length;
      }),
    );
    if ([...this.files.values()].some((f) => f.queued.length || f.cutDue)) throw this.failure ?? new Error('log records are waiting for the disk');
    this.failure = undefined;
  }

  /**
   * Bytes of a run's log: its whole records in the file and those waiting in
   * memory, i.e. the position the next record appended gets (0: no log). A
   * torn tail is not counted: it is cut before the next append.
   */
  end(runId: string): number {
    const f = this.files.get(runId);
    const queued = f ? f.queued.reduce((n, q) => n + q.length, 0) : 0;
    if (f && f.fd >= 0) return f.size + queued;
    let fd: number;
    try {
      fd = this.disk.openSync(this.path(runId), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return queued;
    }
    try {
      return fileExtent(this.disk, fd).whole + queued;
    } finally {
      this.disk.closeSync(fd);
    }
  }

  /** The runs that have a log file here (a JetStream store checks them against its stream at start). */
  runIds(): string[] {
    return this.disk
      .readdirSync(this.dir)
      .filter((f) => f.endsWith('.ndjson'))
      .map((f) => f.slice(0, -'.ndjson'.length));
  }

  /**
   * Cuts a run's log back to its first `bytes` (a record boundary), before
   * anything else of it is read or appended: records a crash left that a
   * JetStream store never got acknowledged (store/jetstream-logs.ts).
   */
  async cutTo(runId: string, bytes: number) {
    this.closeOne(runId);
    this.indexes.delete(runId);
    const fd = await this.disk.open(this.path(runId), 'r+');
    try {
      this.disk.ftruncateSync(fd, bytes);
      await this.disk.fdatasync(fd);
    } finally {
      await this.disk.close(fd);
    }
  }

  /** Forgets a run's log (its run is deleted); a file that cannot be removed is logged and left. */
  remove(runId: string) {
    this.closeOne(runId);
    this.indexes.delete(runId);
    try {
      this.disk.rmSync(this.path(runId));
    } catch (err) {
      this.warn({ file: this.path(runId), ...describeError(err) }, 'a pruned run log could not be removed; it is left behind');
    }
  }

  close() {
    for (const runId of [...this.files.keys()]) this.closeOne(runId);
    this.indexes.clear();
  }

  private indexOf(runId: string): LogIndex {
    let index = this.indexes.get(runId);
    if (!index) this.indexes.set(runId, (index = new LogIndex()));
    return index;
  }

  private writeQueued(runId: string, f: OpenLog) {
    try {
      if (f.fd < 0) this.openForAppend(runId, f);
      if (f.cutDue) this.cut(f, true);
      if (!f.queued.length) return;
      const data = f.queued.length === 1 ? f.queued[0] : Buffer.concat(f.queued);
      const n = this.disk.writeSync(f.fd, data, 0, data.length);
      if (n < data.length) {
        // A short write (a full disk): cut the partial record off; everything waits for the next try.
        this.failure = Object.assign(new Error(`ENOSPC: no space left on device, short write to ${this.path(runId)}`), { code: 'ENOSPC' });
        this.cut(f);
        return;
      }
      f.size += data.length;
      f.written.push(...f.queued);
      f.queued = [];
    } catch (err) {
      this.failure = err;
      if (f.fd >= 0) this.cut(f);
    }
  }

  /** Opens a run's file for appending; cuts a torn tail a crash left (its message was never acknowledged, and comes again). */
  private openForAppend(runId: string, f: OpenLog) {
    const fd = this.disk.openSync(this.path(runId), 'a+', 0o600);
    try {
      const size = this.disk.sizeOf(fd);
      const torn = tornTailBytes(this.disk, fd, size);
      if (torn) {
        this.disk.ftruncateSync(fd, size - torn);
        this.warn({ file: this.path(runId), bytes: torn, at: size - torn }, 'cut a torn last log record (a crash mid-append); its agent message was not acknowledged and comes again');
      }
      Object.assign(f, { fd, durable: size - torn, size: size - torn });
    } catch (err) {
      this.disk.closeSync(fd);
      throw err;
    }
  }

  /** Cuts the file back to its whole records; when that fails too, the next write cuts first (`strict`: and throws). */
  private cut(f: OpenLog, strict = false) {
    try {
      this.disk.ftruncateSync(f.fd, f.size);
      f.cutDue = false;
    } catch (err) {
      f.cutDue = true;
      this.failure = err;
      if (strict) throw err;
    }
  }

  private notice(file: string, at: number, line: string, before: LogRecord | undefined): LogRecord {
    if (!this.warned.has(file)) {
      this.warned.add(file);
      this.warn({ file, at, bytes: line.length }, 'unreadable log record skipped; readers are shown a notice in its place');
    }
    // The step, when what is left of the record still names it, so `drover logs RUN STEP` shows the notice too.
    const step = /"step":"((?:[^"\\]|\\.)*)"/.exec(line)?.[1] ?? '';
    return {
      t: before?.t ?? 0,
      step,
      attempt: '',
      agent: '',
      stream: 'stderr',
      text: `[drover: 1 unreadable log record at byte ${at} of ${file} skipped]\n`,
    };
  }

  /** Closes least recently used files past MAX_OPEN_FILES; only files whose records are all durable. */
  private evict() {
    if (this.files.size <= MAX_OPEN_FILES) return;
    for (const [runId, f] of this.files) {
      if (this.files.size <= MAX_OPEN_FILES) return;
      if (!f.queued.length && !f.written.length && !f.cutDue) this.closeOne(runId);
    }
  }

  private closeOne(runId: string) {
    const f = this.files.get(runId);
    if (!f) return;
    this.files.delete(runId);
    for (const r of [...f.written, ...f.queued]) this.pending -= r.length;
    if (f.fd >= 0) {
      try {
        this.disk.closeSync(f.fd);
      } catch {
        // close(2) reports deferred write errors; this file's records were durable already, or its run is gone.
      }
    }
  }
}
