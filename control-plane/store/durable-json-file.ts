/**
 * A lowdb adapter whose writes survive SIGKILL and power loss at any moment:
 * write a temp file, fsync it, rename it over the old one, fsync the folder.
 * A reader therefore sees either the previous document or the new one, and
 * the generation before is kept as `<file>.bak` for recovery.
 *
 * A write that fails leaves the previous document in place: when the
 * folder's fsync fails after the rename, the rename is undone from `.bak`,
 * so a write reported failed is not found after a restart either.
 */
import { dirname } from 'node:path';
import type { Adapter } from 'lowdb';
import { nodeDisk, writeAll, type Disk } from './disk.js';
import { StoreError } from './store.js';

export class DurableJsonFile<T> implements Adapter<T> {
  /** Size of the document last read or written, in bytes. */
  bytes = 0;

  constructor(
    readonly path: string,
    private readonly disk: Disk = nodeDisk,
  ) {}

  /**
   * Reads the document. A file that is not valid JSON (a disk fault, a hand
   * edit) is moved aside and the previous generation (`.bak`, kept by every
   * write) is loaded instead, with `recovered` describing what happened.
   */
  async read(): Promise<T | null> {
    const text = await this.readText(this.path);
    if (text === null) return null;
    this.bytes = Buffer.byteLength(text);
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      const why = (err as Error).message;
      const backup = await this.readText(`${this.path}.bak`);
      let data: T;
      try {
        if (backup === null) throw new Error('no backup');
        data = JSON.parse(backup) as T;
      } catch {
        throw new StoreError(
          `the state file ${this.path} is not valid JSON (${why}) and there is no readable backup (${this.path}.bak); ` +
            'move it aside to start with an empty state, or restore it from your own backup. It has not been changed.',
          { cause: err },
        );
      }
      const aside = `${this.path}.corrupt-${Date.now()}`;
      await this.disk.rename(this.path, aside);
      this.bytes = Buffer.byteLength(backup!);
      this.recovered = `the state file ${this.path} was not valid JSON (${why}); it was moved to ${aside} and the previous generation (${this.path}.bak) was loaded instead.`;
      return data;
    }
  }

  /** Set by read() when it fell back to the backup: what happened, for the log. */
  recovered = '';

  private async readText(file: string): Promise<string | null> {
    try {
      return (await this.disk.readFile(file)).toString('utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new StoreError(`cannot read the state file ${file}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Serialises `data` before it first awaits, so later changes to it do not leak into this write. */
  async write(data: T): Promise<void> {
    const text = Buffer.from(JSON.stringify(data));
    const tmp = `${this.path}.tmp`;
    const fd = await this.disk.open(tmp, 'w', 0o600);
    try {
      await writeAll(this.disk, fd, text);
      await this.disk.fsync(fd);
    } finally {
      await this.disk.close(fd);
    }
    // Keep the generation being replaced as .bak (a hard link: no copy).
    await this.disk.rm(`${this.path}.bak`);
    const hadPrevious = await this.disk.link(this.path, `${this.path}.bak`).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
        return false;
      },
    );
    await this.disk.rename(tmp, this.path);
    try {
      await this.syncDir();
    } catch (err) {
      // Not known durable: put the previous document back (a no-op for a first write), so a restart does not load one reported failed.
      if (hadPrevious) await this.disk.link(`${this.path}.bak`, tmp).then(() => this.disk.rename(tmp, this.path)).catch(() => undefined);
      throw err;
    }
    this.bytes = text.length;
  }

  private async syncDir() {
    const dir = await this.disk.open(dirname(this.path), 'r');
    try {
      await this.disk.fsync(dir);
    } finally {
      await this.disk.close(dir);
    }
  }
}
