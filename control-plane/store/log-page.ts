/**
 * One page of a run's log (LogFiles.page): its file's whole records, then
 * the records waiting in memory for the disk, which the file will hold at
 * the same positions once written. Reads CHUNK_BYTES at a time and stops at
 * the page's record limit or after PAGE_READ_BYTES, so one page's memory and
 * its pause of the event loop stay small however long the log; blocks the
 * index says cannot match the filter are passed over without being read.
 *
 * A position is the byte offset of a record. Every page moves on by at least
 * one record unless it is at the end. A torn last record (a crash
 * mid-append, in a file not open for appending) has no position: a notice
 * stands for it, and the page goes on past it to at least one queued record.
 */
import { tornTailBytes, type Disk } from './disk.js';
import type { LogIndex } from './log-index.js';
import { LOG_PAGE_RECORDS, logMatches, type LogPage, type LogRead, type LogRecord } from './store.js';

/**
 * Bytes a page reads at most (it then returns fewer records, when the
 * filter drops most); a record longer than this is still read whole.
 */
const PAGE_READ_BYTES = 1024 * 1024;
/** Bytes read from the file at once. */
const CHUNK_BYTES = 64 * 1024;
/** Bytes of a torn record read to find the step it names. */
const TORN_PEEK_BYTES = 4096;

/** What a page is read from: one run's file and its records not yet written. */
export interface PageSource {
  disk: Disk;
  /** Open for reading; -1: there is no file. */
  fd: number;
  /** Bytes of whole records in the file (those past it, on an open file, are a failed write not yet cut back). */
  whole: number;
  /** Bytes of a torn last record after them. */
  torn: number;
  /** Records not written yet, in order: they come after `whole`. */
  queued: readonly Buffer[];
  /** The record shown in place of an unreadable line at `at`; `before` is the record read before it, if any. */
  notice(at: number, line: string, before: LogRecord | undefined): LogRecord;
}

/** The bytes of whole records and of a torn tail of a file not open for appending. */
export function fileExtent(disk: Disk, fd: number): { whole: number; torn: number } {
  const size = disk.sizeOf(fd);
  const torn = tornTailBytes(disk, fd, size);
  return { whole: size - torn, torn };
}

/** A page from `read.from`; the index grows by the records read at its end. */
export function readPage(src: PageSource, index: LogIndex, read: LogRead): LogPage {
  const filter = read.filter ?? {};
  const limit = Math.max(1, read.limit ?? LOG_PAGE_RECORDS);
  const size = src.whole + src.queued.reduce((n, q) => n + q.length, 0);
  const records: LogRecord[] = [];
  let before: LogRecord | undefined;
  let budget = PAGE_READ_BYTES;
  const full = () => records.length >= limit || budget <= 0;

  /** Takes the lines of `chunk` (whole records, starting at `at`) while the page has room, and at least one; returns where it stopped. */
  const take = (chunk: Buffer, at: number): number => {
    let start = 0;
    do {
      const nl = chunk.indexOf(10, start);
      const end = nl < 0 ? chunk.length : nl;
      let r: LogRecord | undefined;
      if (end > start) {
        const line = chunk.toString('utf8', start, end);
        try {
          r = JSON.parse(line) as LogRecord;
        } catch {
          r = src.notice(at + start, line, before);
        }
        before = r;
      }
      index.add(at + start, end + 1 - start, r);
      if (r && logMatches(r, filter)) records.push(r);
      budget -= end + 1 - start;
      start = end + 1;
    } while (start < chunk.length && records.length < limit);
    return at + start;
  };

  let pos = Math.min(read.from ?? 0, size);
  while (!full() && pos < src.whole) {
    pos = Math.min(index.skip(pos, filter), size);
    if (pos < src.whole) pos = take(chunkAt(src, pos), pos);
  }
  let mustTake = false;
  if (pos === src.whole && src.torn && !full()) {
    const peek = Buffer.alloc(Math.min(src.torn, TORN_PEEK_BYTES));
    src.disk.readSync(src.fd, peek, 0, peek.length, src.whole);
    const r = src.notice(src.whole, peek.toString('utf8'), before);
    if (logMatches(r, filter)) records.push(r);
    // No position stands for the notice: the page moves past it, or a later page would show it again.
    mustTake = true;
  }
  let at = src.whole;
  for (const q of src.queued) {
    if (pos >= size || (full() && !mustTake)) break;
    if (pos < at + q.length) {
      pos = take(q.subarray(pos - at), pos);
      mustTake = false;
    }
    at += q.length;
  }
  return { records, next: pos, size };
}

/** The file's bytes from `pos`: CHUNK_BYTES or more, up to the end of the last whole record in them. */
function chunkAt(src: PageSource, pos: number): Buffer {
  for (let want = CHUNK_BYTES; ; want *= 2) {
    const n = Math.min(want, src.whole - pos);
    const buf = Buffer.allocUnsafe(n);
    const got = src.disk.readSync(src.fd, buf, 0, n, pos);
    const nl = buf.subarray(0, got).lastIndexOf(10);
    if (nl >= 0) return buf.subarray(0, nl + 1);
    if (got < n || pos + n >= src.whole) throw new Error(`log file changed under its reader: no record end after byte ${pos}`);
  }
}
