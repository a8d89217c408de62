/**
 * A lowdb adapter whose writes survive SIGKILL and power loss at any moment:
 * write a temp file, fsync it, rename it over the old one, fsync the folder.
 * A reader therefore sees either the previous document or the new one.
 */
import { open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Adapter } from 'lowdb';
import { StoreError } from './store.js';

export class DurableJsonFile<T> implements Adapter<T> {
  constructor(private readonly file: string) {}

  async read(): Promise<T | null> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new StoreError(`cannot read the state file ${this.file}: ${(err as Error).message}`, { cause: err });
    }
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new StoreError(
        `the state file ${this.file} is not valid JSON (${(err as Error).message}); ` +
          'it was not written by drover or was edited by hand. Move it aside to start with an empty state, ' +
          'or restore it from a backup. It has not been changed.',
        { cause: err },
      );
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
    await rename(tmp, this.file);
    const dir = await open(dirname(this.file), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}
