/**
 * Where a run's log records are, by byte offset, so a read can start
 * anywhere and pass over what its filter cannot match without reading it.
 *
 * Records are grouped in blocks of BLOCK_RECORDS consecutive records. Per
 * block the index keeps its first byte, the steps, attempts and streams in
 * it (up to BLOCK_KEYS different ones each; past that the block may hold
 * any) and its latest time; per agent, the highest message seq of the log.
 * It covers the log from byte 0 to `end` and grows only there: with each
 * append, and with each read that passes its end — so after a restart the
 * first read builds it as it goes, and `LogFiles.seqs` completes it in one
 * pass. It is never written to disk.
 */
import type { LogFilter, LogRecord } from './store.js';

/** Records per block: with one entry per block, a 200,000-line log has an index of ~200 entries. */
export const BLOCK_RECORDS = 1024;
/** Different steps (attempts) a block remembers; a block with more may hold any, so a filtered read reads it. */
const BLOCK_KEYS = 64;

interface Block {
  /** Byte offset of its first record. */
  at: number;
  /** null: more than BLOCK_KEYS. */
  steps: Set<string> | null;
  attempts: Set<string> | null;
  streams: Set<string>;
  tMax: number;
}

/** One run's index (the header says what it holds). */
export class LogIndex {
  /** Bytes covered, from 0. */
  end = 0;
  /** Records covered. */
  count = 0;
  /** Per agent, the highest message seq among the records covered. */
  readonly seqs = new Map<string, number>();
  private blocks: Block[] = [];

  /** Covers the `bytes` at `at`: a record, or (undefined) a blank line. Ignored unless `at` is the end: the index has no holes. */
  add(at: number, bytes: number, r: LogRecord | undefined) {
    if (at !== this.end) return;
    this.end += bytes;
    if (!r) return;
    if (this.count++ % BLOCK_RECORDS === 0) this.blocks.push({ at, steps: new Set(), attempts: new Set(), streams: new Set(), tMax: r.t });
    const b = this.blocks[this.blocks.length - 1];
    b.steps = remember(b.steps, r.step);
    b.attempts = remember(b.attempts, r.attempt);
    b.streams.add(r.stream);
    if (r.t > b.tMax) b.tMax = r.t;
    if (r.seq && r.seq > (this.seqs.get(r.agent) ?? 0)) this.seqs.set(r.agent, r.seq);
  }

  /** The first position at or after `from` where a record may match: the rest of every block that cannot is passed over. */
  skip(from: number, f: LogFilter): number {
    if (from >= this.end || (f.step === undefined && f.attempts === undefined && f.stream === undefined && f.since === undefined)) return from;
    let i = this.blockOf(from);
    while (i < this.blocks.length && !mayMatch(this.blocks[i], f)) {
      from = i + 1 < this.blocks.length ? this.blocks[i + 1].at : this.end;
      i++;
    }
    return from;
  }

  /** The block holding `at` (the last that starts at or before it). */
  private blockOf(at: number): number {
    let lo = 0;
    let hi = this.blocks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.blocks[mid].at <= at) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

function remember(keys: Set<string> | null, key: string): Set<string> | null {
  if (!keys || keys.has(key)) return keys;
  return keys.size >= BLOCK_KEYS ? null : keys.add(key);
}

/** Whether a record of the block may pass the filter (store.ts `logMatches`, on what the block remembers). */
function mayMatch(b: Block, f: LogFilter): boolean {
  if (f.since !== undefined && b.tMax < f.since) return false;
  if (f.stream !== undefined && !b.streams.has(f.stream)) return false;
  if (f.step !== undefined && b.steps && !b.steps.has(f.step) && !b.steps.has('')) return false;
  if (f.attempts !== undefined && b.attempts && ![...b.attempts].some((a) => f.attempts!.has(a))) return false;
  return true;
}
