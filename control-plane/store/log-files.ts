/**
 * Run logs as one NDJSON file per run (`<dir>/<runId>.ndjson`), kept out of
 * the state document so a chatty step never makes state writes bigger.
 * Appends are synchronous writes to a cached descriptor (ordered, cheap);
 * `sync()` makes every append so far durable.
 */
import { closeSync, fdatasync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { LogRecord } from './store.js';

const datasync = promisify(fdatasync);

/** Descriptors kept open at most; the least recently used is closed past this. */
const MAX_OPEN_FILES = 256;

export class LogFiles {
  private fds = new Map<string, number>();
  private dirty = new Set<number>();

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  private path(runId: string) {
    return join(this.dir, `${runId}.ndjson`);
  }

  append(runId: string, record: LogRecord) {
    let fd = this.fds.get(runId);
    if (fd === undefined) {
      if (this.fds.size >= MAX_OPEN_FILES) this.closeOne(this.fds.keys().next().value as string);
      fd = openSync(this.path(runId), 'a', 0o600);
    } else {
      this.fds.delete(runId);
    }
    this.fds.set(runId, fd);
    writeSync(fd, `${JSON.stringify(record)}\n`);
    this.dirty.add(fd);
  }

  read(runId: string): LogRecord[] {
    let text: string;
    try {
      text = readFileSync(this.path(runId), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: LogRecord[] = [];
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        out.push(JSON.parse(line) as LogRecord);
      } catch {
        // A torn last line from a crash mid-append: the agent still holds it
        // unacknowledged and sends it again, so dropping it loses nothing.
      }
    }
    return out;
  }

  async sync() {
    const fds = [...this.dirty];
    this.dirty.clear();
    await Promise.all(fds.map((fd) => datasync(fd).catch(() => undefined)));
  }

  remove(runId: string) {
    this.closeOne(runId);
    rmSync(this.path(runId), { force: true });
  }

  private closeOne(runId: string) {
    const fd = this.fds.get(runId);
    if (fd === undefined) return;
    this.fds.delete(runId);
    this.dirty.delete(fd);
    closeSync(fd);
  }

  close() {
    for (const runId of [...this.fds.keys()]) this.closeOne(runId);
  }
}
