/**
 * The attempt ledger: every attempt id this agent starts is written down
 * before its process is spawned, and its end when it ends. An attempt is
 * never started twice, across restarts: after a restart, an attempt that was
 * started but never ended died with the agent and is reported lost.
 *
 * `<state-dir>/ledger.ndjson`, one JSON object per line:
 *   {"a":"run/step/1/agent","s":1}                        started (before the spawn)
 *   {"a":"run/step/1/agent","p":1234,"t":"8812345"}       its process group and start time
 *   {"a":"run/step/1/agent","e":"succeeded","o":{...}}    ended, with outputs
 * A torn last line (a kill mid-write) is ignored: a start record is written
 * before the spawn, so a torn one means the process never started.
 * The file is compacted on open, keeping the newest MAX_ENTRIES attempts.
 */
import { closeSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';

/** Attempts remembered; older ones are forgotten at the next open. */
const MAX_ENTRIES = 20_000;

export type EndStatus = 'succeeded' | 'failed' | 'skipped' | 'cancelled' | 'lost';

export interface AttemptEntry {
  attemptId: string;
  ended?: EndStatus;
  outputs?: Record<string, string>;
  /** Process group of a running attempt, and its start time (to tell pid reuse apart). */
  pid?: number;
  startTime?: string;
}

export class Ledger {
  private entries = new Map<string, AttemptEntry>();
  private fd = -1;

  constructor(private readonly file: string) {}

  /** Loads the ledger; returns attempts that started but never ended (they died with the agent). */
  open(): AttemptEntry[] {
    let text = '';
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const line of text.split('\n')) {
      if (!line) continue;
      let rec: { a?: string; s?: number; e?: EndStatus; o?: Record<string, string>; p?: number; t?: string };
      try {
        rec = JSON.parse(line);
      } catch {
        continue;
      }
      if (!rec.a) continue;
      if (rec.e) this.entries.set(rec.a, { attemptId: rec.a, ended: rec.e, outputs: rec.o ?? {} });
      else if (rec.p) this.entries.set(rec.a, { attemptId: rec.a, pid: rec.p, startTime: rec.t });
      else if (!this.entries.has(rec.a)) this.entries.set(rec.a, { attemptId: rec.a });
    }
    const keep = [...this.entries.values()].slice(-MAX_ENTRIES);
    this.entries = new Map(keep.map((e) => [e.attemptId, e]));
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, keep.map(line).join(''), { mode: 0o600 });
    renameSync(tmp, this.file);
    this.fd = openSync(this.file, 'a', 0o600);
    return keep.filter((e) => !e.ended);
  }

  has(attemptId: string): boolean {
    return this.entries.has(attemptId);
  }

  get(attemptId: string): AttemptEntry | undefined {
    return this.entries.get(attemptId);
  }

  started(attemptId: string): void {
    const e = { attemptId };
    this.entries.set(attemptId, e);
    writeSync(this.fd, line(e));
  }

  spawned(attemptId: string, pid: number): void {
    const e = { attemptId, pid, startTime: processStartTime(pid) };
    this.entries.set(attemptId, e);
    writeSync(this.fd, line(e));
  }

  ended(attemptId: string, status: EndStatus, outputs: Record<string, string>): void {
    const e = { attemptId, ended: status, outputs };
    this.entries.set(attemptId, e);
    writeSync(this.fd, line(e));
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

function line(e: AttemptEntry): string {
  const rec = e.ended ? { a: e.attemptId, e: e.ended, o: e.outputs } : e.pid ? { a: e.attemptId, p: e.pid, t: e.startTime } : { a: e.attemptId, s: 1 };
  return `${JSON.stringify(rec)}\n`;
}

/** Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. */
function processStartTime(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}

/**
 * Kills the process group an attempt left behind when the agent died, if it
 * is still the same process (same start time), so it cannot finish unseen.
 */
export function killOrphan(pid: number, startTime: string): boolean {
  if (!startTime || processStartTime(pid) !== startTime) return false;
  try {
    process.kill(-pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}
