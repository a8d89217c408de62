/**
 * Files that hold keys, certificates and tokens: written whole or not at all
 * (temp file, fsync, rename, fsync of the folder), readable by the owner
 * only (0600), so a crash or a full disk never leaves half a key behind.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Replaces `path` with `data` atomically, mode 0600. Throws (leaving the old file) when the disk fails. */
export function writeSecretFile(path: string, data: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  try {
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  try {
    const dir = openSync(dirname(path), 'r');
    fsyncSync(dir);
    closeSync(dir);
  } catch {
    // Some file systems refuse fsync on a directory; the rename is still atomic.
  }
}
