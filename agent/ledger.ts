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
 * A torn last line (a kill mid-write) is ignored: a start record is written
 * before the spawn, so a torn one means the process never started.
 * The file is compacted on open, keeping the newest MAX_ENTRIES attempts.
 */
import { closeSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';

/** Attempts remembered; older ones are forgotten at the next open. */
const MAX_ENTRIES = 20_000;

export type EndStatus = 'succeeded' | 'failed' | 'skipped' | 'cancelled' | 'lost';

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
      if (!rec.a) continue;
      const known = this.entries.get(rec.a);
      if (rec.e) this.entries.set(rec.a, { attemptId: rec.a, ended: rec.e, outputs: rec.o ?? {} });
      else {
        const more = { ...(rec.x && { supervised: true }), ...(rec.m && { masked: true }), ...(rec.p && { pid: rec.p, startedAtMs: rec.at }) };
        this.entries.set(rec.a, { ...known, attemptId: rec.a, ...more });
      }
    }
    const keep = [...this.entries.values()].slice(-MAX_ENTRIES);
    this.entries = new Map(keep.map((e) => [e.attemptId, e]));
    const tmp = `${this.file}.tmp`;
    try {
      writeFileSync(tmp, keep.map(line).join(''), { mode: 0o600 });
      renameSync(tmp, this.file);
    } catch {
      // A full or read-only disk: the ledger as it is stays valid (compaction only saves space).
      rmSync(tmp, { force: true });
    }
    this.fd = openSync(this.file, 'a', 0o600);
    return keep.filter((e) => !e.ended);
  }

  has(attemptId: string): boolean {
    return this.entries.has(attemptId);
  }

  get(attemptId: string): AttemptEntry | undefined {
    return this.entries.get(attemptId);
  }

  started(attemptId: string, how: { supervised?: boolean; masked?: boolean } = {}): void {
    this.put({ attemptId, ...how });
  }

  spawned(attemptId: string, pid: number, startedAtMs: number): void {
    this.put({ ...this.entries.get(attemptId), attemptId, pid, startedAtMs });
  }

  ended(attemptId: string, status: EndStatus, outputs: Record<string, string>): void {
    this.put({ attemptId, ended: status, outputs });
  }

  private put(e: AttemptEntry) {
    this.entries.set(e.attemptId, e);
    writeSync(this.fd, line(e));
  }

  close(): void {
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
