/**
 * The state's change log: between two snapshots of the state document, each
 * coalesced write appends the records that changed, as JSON lines, to
 * `<file>.<generation>` and fdatasyncs it. Only what changed is written, so a
 * write costs the size of the change, not the size of the state.
 *
 * A write that fails is cut off again (ftruncate to the last good length), so
 * the file only ever holds whole batches; when the cut fails too, the next
 * append cuts first and fails if it cannot, so a torn batch never runs into
 * the next one. A torn last line after a crash was never acknowledged: it is
 * cut when the file is opened for appending, and skipped when read back.
 */
import { basename, dirname, join } from 'node:path';
import { nodeDisk, tornTailBytes, writeAll, type Disk } from './disk.js';

export class ChangeLog {
  private fd = -1;
  private bytes = 0;
  private cutDue = false;

  constructor(
    private readonly base: string,
    readonly generation: number,
    private readonly disk: Disk = nodeDisk,
  ) {}

  static path(base: string, generation: number): string {
    return `${base}.${generation}`;
  }

  /** Generations of the change logs next to `base`, ascending. */
  static generations(base: string, disk: Disk = nodeDisk): number[] {
    const prefix = `${basename(base)}.`;
    let names: string[];
    try {
      names = disk.readdirSync(dirname(base));
    } catch {
      return [];
    }
    return names
      .filter((n) => n.startsWith(prefix) && /^\d+$/.test(n.slice(prefix.length)))
      .map((n) => Number(n.slice(prefix.length)))
      .sort((a, b) => a - b);
  }

  /**
   * Every whole line of a generation's log (none if it does not exist). A
   * torn last line is skipped; `unreadable` counts garbled lines before it,
   * which no crash explains (a disk fault, a hand edit).
   */
  static read(base: string, generation: number, disk: Disk = nodeDisk): { changes: unknown[]; unreadable: number } {
    let text: string;
    try {
      text = disk.readFileSync(ChangeLog.path(base, generation)).toString('utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { changes: [], unreadable: 0 };
      throw err;
    }
    const changes: unknown[] = [];
    let unreadable = 0;
    const lines = text.split('\n');
    lines.forEach((line, i) => {
      if (!line) return;
      try {
        changes.push(JSON.parse(line));
      } catch {
        // The last line without its newline is a torn append: never acknowledged.
        if (i < lines.length - 1) unreadable++;
      }
    });
    return { changes, unreadable };
  }

  static remove(base: string, generation: number, disk: Disk = nodeDisk) {
    try {
      disk.rmSync(ChangeLog.path(base, generation));
    } catch {
      // An old generation left behind is only replayed on top of a newer document: harmless.
    }
  }

  /** Bytes in the log: what a restart would replay. */
  get size(): number {
    return this.bytes;
  }

  /** Appends lines and makes them durable; on failure the file is cut back to its last good length. Opens the file on first use. */
  async append(text: string): Promise<void> {
    if (!text) return;
    if (this.fd < 0) this.open();
    if (this.cutDue) {
      this.disk.ftruncateSync(this.fd, this.bytes);
      this.cutDue = false;
    }
    const data = Buffer.from(text);
    try {
      await writeAll(this.disk, this.fd, data);
      await this.disk.fdatasync(this.fd);
      this.bytes += data.length;
    } catch (err) {
      try {
        this.disk.ftruncateSync(this.fd, this.bytes);
      } catch {
        this.cutDue = true;
      }
      throw err;
    }
  }

  close() {
    if (this.fd >= 0) {
      try {
        this.disk.closeSync(this.fd);
      } catch {
        // Everything it holds was fdatasynced, or its write failed and was reported.
      }
    }
    this.fd = -1;
  }

  /** Opens (creating if needed) this generation's file for appending, cutting a torn tail off. */
  private open() {
    const fd = this.disk.openSync(ChangeLog.path(this.base, this.generation), 'a+', 0o600);
    try {
      const size = this.disk.sizeOf(fd);
      const torn = tornTailBytes(this.disk, fd, size);
      if (torn) this.disk.ftruncateSync(fd, size - torn);
      this.bytes = size - torn;
      this.fd = fd;
    } catch (err) {
      this.disk.closeSync(fd);
      throw err;
    }
  }
}

export const changeLogFile = (dataDir: string) => join(dataDir, 'state.changes');
