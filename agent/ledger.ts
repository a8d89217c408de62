/**
 * The attempt ledger: every attempt id this agent starts is written down
 * before its process is spawned, and its end when it ends. An attempt is
 * never started twice, across restarts: after a restart, an attempt that was
 * started but never ended is looked for (a supervised process step may still
 * run, or have ended while no agent watched: executor/supervise.ts); only one
 * whose process is really gone without an exit status is reported lost.
 *
 * `<state-dir>/ledger.ndjson`, one JSON object per line:
 *   {"a":"run/step/1/agent","s":1,"x":1,"m":1}          started (before the spawn); x: supervised process, m: has secrets
 *   {"a":"run/step/1/agent","p":1234,"at":1764600000000} its supervisor's pid and when it started
 *   {"a":"run/step/1/agent","e":"succeeded","o":{...}}   ended, with outputs
 *   {"f":"run"}                                          the run finished (RunFinished): its ended attempts are forgotten
 * A torn last line (a kill mid-write) is ignored: a start record is written
 * before the spawn, so a torn one means the process never started.
 * The file is compacted on open, keeping the newest MAX_ENTRIES attempts.
 *
 * A failing disk: a failed or short write is cut back to the last whole
 * line. A start that cannot be written is refused (started() returns false:
 * the attempt must not run unrecorded); a pid or an end that cannot be
 * written is kept in memory and written, in order, before the next line and
 * by a retry every RETRY_MS.
 */
import { closeSync, fstatSync, ftruncateSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import type { EndStatus } from './slice/types.js';

/** Attempts remembered; older ones are forgotten at the next open. */
const MAX_ENTRIES = 20_000;
const RETRY_MS = 1000;

export interface AttemptEntry {
  attemptId: string;
  ended?: EndStatus;
  outputs?: Record<string, string>;
  /** A process step run under the supervisor (it can outlive the agent). */
  supervised?: boolean;
  /** The step had secrets: its output cannot be reported without them (they come with the step). */
  masked?: boolean;
  /** The supervisor's pid (its process group), and when the attempt started. */
  pid?: number;
  startedAtMs?: number;
}

interface Line {
  /** A finished run (RunFinished). */
  f?: string;
  a?: string;
  s?: number;
  x?: number;
  m?: number;
  e?: EndStatus;
  o?: Record<string, string>;
  p?: number;
  at?: number;
}

export class Ledger {
  private entries = new Map<string, AttemptEntry>();
  private fd = -1;
  /** Bytes of whole lines in the file. */
  private size = 0;
  /** Lines not written yet (the disk failed), in order. */
  private unwritten: string[] = [];
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly file: string) {}

  /** Loads the ledger; returns attempts that started but never ended (the caller finds out what became of them). */
  open(): AttemptEntry[] {
    let text = '';
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const line of text.split('\n')) {
      if (!line) continue;
      let rec: Line;
      try {
        rec = JSON.parse(line);
      } catch {
        continue;
      }
      if (rec.f) this.dropEnded(rec.f);
      if (!rec.a) continue;
      const known = this.entries.get(rec.a);
      if (rec.e) this.entries.set(rec.a, { attemptId: rec.a, ended: rec.e, outputs: rec.o ?? {} });
      else {
        const more = { ...(rec.x && { supervised: true }), ...(rec.m && { masked: true }), ...(rec.p && { pid: rec.p, startedAtMs: rec.at }) };
        this.entries.set(rec.a, { ...known, attemptId: rec.a, ...more });
      }
    }
    // The newest ended ones, and every one still running, however old.
    const all = [...this.entries.values()];
    const ended = all.filter((e) => e.ended);
    const drop = new Set(ended.slice(0, Math.max(0, all.length - MAX_ENTRIES)));
    const keep = all.filter((e) => !drop.has(e));
    this.entries = new Map(keep.map((e) => [e.attemptId, e]));
    const tmp = `${this.file}.tmp`;
    try {
      writeFileSync(tmp, keep.map(line).join(''), { mode: 0o600 });
      renameSync(tmp, this.file);
    } catch {
      // A full or read-only disk: the ledger as it is stays valid (compaction only saves space).
      rmSync(tmp, { force: true });
      // But a torn last line must not run into the next one.
      text = readFileSync(this.file, 'utf8');
    }
    this.fd = openSync(this.file, 'a', 0o600);
    this.size = fstatSync(this.fd).size;
    const whole = Buffer.byteLength(text.slice(0, text.lastIndexOf('\n') + 1));
    if (this.size > whole) this.cut(whole);
    return keep.filter((e) => !e.ended);
  }

  has(attemptId: string): boolean {
    return this.entries.has(attemptId);
  }

  get(attemptId: string): AttemptEntry | undefined {
    return this.entries.get(attemptId);
  }

  /** Records a start before the attempt runs; false when the disk refused it (do not run the attempt now). */
  started(attemptId: string, how: { supervised?: boolean; masked?: boolean } = {}): boolean {
    const e = { attemptId, ...how };
    if (!this.write(line(e), false)) return false;
    this.entries.set(attemptId, e);
    return true;
  }

  spawned(attemptId: string, pid: number, startedAtMs: number): void {
    this.put({ ...this.entries.get(attemptId), attemptId, pid, startedAtMs });
  }

  ended(attemptId: string, status: EndStatus, outputs: Record<string, string>): void {
    this.put({ attemptId, ended: status, outputs });
  }

  /**
   * The control plane says the run ended: its ended attempts are forgotten
   * (one still running stays: its end is still reported). Nothing of the run
   * is sent again, so none of its attempts can be asked to start again.
   */
  forgetRun(runId: string): void {
    if (!this.dropEnded(runId)) return;
    this.write(`${JSON.stringify({ f: runId } satisfies Line)}\n`, true);
  }

  /** Up to `max` ended attempt ids, oldest first: Hello.finished_attempts (their runs are not known to be finished). */
  endedIds(max: number): string[] {
    const out: string[] = [];
    for (const e of this.entries.values()) {
      if (!e.ended) continue;
      out.push(e.attemptId);
      if (out.length >= max) break;
    }
    return out;
  }

  /** Removes the run's ended entries; whether there were any. */
  private dropEnded(runId: string): boolean {
    const prefix = `${runId}/`;
    let any = false;
    for (const [id, e] of this.entries) {
      if (e.ended && id.startsWith(prefix)) {
        this.entries.delete(id);
        any = true;
      }
    }
    return any;
  }

  /** Lines waiting for the disk. */
  get pendingLines(): number {
    return this.unwritten.length;
  }

  private put(e: AttemptEntry) {
    this.entries.set(e.attemptId, e);
    this.write(line(e), true);
  }

  /** Writes what waits, then `text`; on failure cuts back and keeps `text` for later when `keep`. */
  private write(text: string, keep: boolean): boolean {
    if (!this.flushUnwritten()) {
      if (keep) this.unwritten.push(text);
      return false;
    }
    if (this.append(text)) return true;
    if (keep) {
      this.unwritten.push(text);
      this.retryTimer ??= setTimeout(() => this.retry(), RETRY_MS).unref();
    }
    return false;
  }

  private retry() {
    this.retryTimer = undefined;
    if (!this.flushUnwritten()) this.retryTimer = setTimeout(() => this.retry(), RETRY_MS).unref();
  }

  private flushUnwritten(): boolean {
    while (this.unwritten.length) {
      if (!this.append(this.unwritten[0])) {
        this.retryTimer ??= setTimeout(() => this.retry(), RETRY_MS).unref();
        return false;
      }
      this.unwritten.shift();
    }
    return true;
  }

  private append(text: string): boolean {
    if (this.torn) this.cut(this.size);
    // Torn bytes that cannot be cut: a line end first, so they stay a line of their own (skipped when read).
    const data = Buffer.from(this.torn ? `\n${text}` : text);
    try {
      const n = writeSync(this.fd, data);
      if (n < data.length) throw new Error('short write');
      this.size = this.torn ? fstatSync(this.fd).size : this.size + n;
      this.torn = false;
      return true;
    } catch {
      this.cut(this.size);
      return false;
    }
  }

  /** Torn bytes past `size` that a failed cut left. */
  private torn = false;

  private cut(size: number) {
    try {
      ftruncateSync(this.fd, size);
      this.size = size;
      this.torn = false;
    } catch {
      this.torn = true;
    }
  }

  close(): void {
    clearTimeout(this.retryTimer);
    this.flushUnwritten();
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/** An entry as its newest line; compaction writes each entry's state in one. */
function line(e: AttemptEntry): string {
  const rec: Line = e.ended
    ? { a: e.attemptId, e: e.ended, o: e.outputs }
    : { a: e.attemptId, s: 1, ...(e.supervised && { x: 1 }), ...(e.masked && { m: 1 }), ...(e.pid && { p: e.pid, at: e.startedAtMs }) };
  return `${JSON.stringify(rec)}\n`;
}
