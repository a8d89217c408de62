/**
 * The state's change log: between two snapshots of the state document, each
 * coalesced write appends the records that changed, as JSON lines, to
 * `<file>.<generation>` and fdatasyncs it. Only what changed is written, so a
 * write costs the size of the change, not the size of the state.
 *
 * A write that fails is cut off again (ftruncate to the last good length), so
 * the file only ever holds whole batches; a torn last line after a crash was
 * never acknowledged and is skipped when the log is read back.
 */
import { closeSync, fdatasync, fstatSync, ftruncateSync, openSync, readdirSync, readFileSync, rmSync, write } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';

const writeAsync = promisify(write);
const datasync = promisify(fdatasync);

export class ChangeLog {
  private fd = -1;
  private bytes = 0;

  constructor(
    private readonly base: string,
    readonly generation: number,
  ) {}

  static path(base: string, generation: number): string {
    return `${base}.${generation}`;
  }

  /** Generations of the change logs next to `base`, ascending. */
  static generations(base: string): number[] {
    const prefix = `${basename(base)}.`;
    let names: string[];
    try {
      names = readdirSync(dirname(base));
    } catch {
      return [];
    }
    return names
      .filter((n) => n.startsWith(prefix) && /^\d+$/.test(n.slice(prefix.length)))
      .map((n) => Number(n.slice(prefix.length)))
      .sort((a, b) => a - b);
  }

  /** Every whole line of a generation's log (none if it does not exist); a torn or garbled line is skipped. */
  static read(base: string, generation: number): unknown[] {
    let text: string;
    try {
      text = readFileSync(ChangeLog.path(base, generation), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: unknown[] = [];
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        out.push(JSON.parse(line));
      } catch {
        // A torn last line: its write never completed, so it was never acknowledged.
      }
    }
    return out;
  }

  static remove(base: string, generation: number) {
    rmSync(ChangeLog.path(base, generation), { force: true });
  }

  /** Opens (creating if needed) this generation's file for appending. */
  open(): this {
    this.fd = openSync(ChangeLog.path(this.base, this.generation), 'a', 0o600);
    this.bytes = fstatSync(this.fd).size;
    return this;
  }

  /** Bytes in the log: what a restart would replay. */
  get size(): number {
    return this.bytes;
  }

  /** Appends lines and makes them durable; on failure the file is cut back to its last good length. */
  async append(text: string): Promise<void> {
    if (!text) return;
    const data = Buffer.from(text);
    try {
      let off = 0;
      while (off < data.length) off += (await writeAsync(this.fd, data, off, data.length - off)).bytesWritten;
      await datasync(this.fd);
      this.bytes += data.length;
    } catch (err) {
      try {
        ftruncateSync(this.fd, this.bytes);
      } catch {
        // The next append fails too, and says why.
      }
      throw err;
    }
  }

  close() {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

export const changeLogFile = (dataDir: string) => join(dataDir, 'state.changes');
