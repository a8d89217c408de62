/**
 * A lowdb adapter whose writes survive SIGKILL and power loss at any moment:
 * write a temp file, fsync it, rename it over the old one, fsync the folder.
 * A reader therefore sees either the previous document or the new one, and
 * the generation before is kept as `<file>.bak` for recovery.
 */
import { link, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Adapter } from 'lowdb';
import { StoreError } from './store.js';

export class DurableJsonFile<T> implements Adapter<T> {
  constructor(private readonly file: string) {}

  /**
   * Reads the document. A file that is not valid JSON (a disk fault, a hand
   * edit) is moved aside and the previous generation (`.bak`, kept by every
   * write) is loaded instead, with `recovered` describing what happened.
   */
  async read(): Promise<T | null> {
    const text = await this.readText(this.file);
    if (text === null) return null;
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      const why = (err as Error).message;
      const backup = await this.readText(`${this.file}.bak`);
      let data: T;
      try {
        if (backup === null) throw new Error('no backup');
        data = JSON.parse(backup) as T;
      } catch {
        throw new StoreError(
          `the state file ${this.file} is not valid JSON (${why}) and there is no readable backup (${this.file}.bak); ` +
            'move it aside to start with an empty state, or restore it from your own backup. It has not been changed.',
          { cause: err },
        );
      }
      const aside = `${this.file}.corrupt-${Date.now()}`;
      await rename(this.file, aside);
      this.recovered = `the state file ${this.file} was not valid JSON (${why}); it was moved to ${aside} and the previous generation (${this.file}.bak) was loaded instead. Changes after that generation are lost unless agents resend them.`;
      return data;
    }
  }

  /** Set by read() when it fell back to the backup: what happened, for the log. */
  recovered = '';

  private async readText(file: string): Promise<string | null> {
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new StoreError(`cannot read the state file ${file}: ${(err as Error).message}`, { cause: err });
    }
  }

  async write(data: T): Promise<void> {
    const tmp = `${this.file}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(JSON.stringify(data));
      await fh.sync();
    } finally {
      await fh.close();
    }
    // Keep the generation being replaced as .bak (a hard link: no copy).
    await rm(`${this.file}.bak`, { force: true });
    await link(this.file, `${this.file}.bak`).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    await rename(tmp, this.file);
    const dir = await open(dirname(this.file), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}
