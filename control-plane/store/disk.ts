/**
 * The file-system calls the store makes, behind one small interface, so
 * tests can fail any of them (EIO, ENOSPC, EPERM, EROFS) at any step of a
 * write. `nodeDisk` is the real thing.
 */
import * as fs from 'node:fs';
import { promisify } from 'node:util';

export interface Disk {
  mkdirSync(path: string, mode: number): void;
  readdirSync(path: string): string[];
  /** Throws ENOENT when the file does not exist. */
  readFileSync(path: string): Buffer;
  readFile(path: string): Promise<Buffer>;
  rmSync(path: string): void;
  rm(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  link(existing: string, created: string): Promise<void>;
  openSync(path: string, flags: string, mode?: number): number;
  open(path: string, flags: string, mode?: number): Promise<number>;
  closeSync(fd: number): void;
  close(fd: number): Promise<void>;
  /** Bytes written, which may be fewer than asked. */
  writeSync(fd: number, data: Buffer, offset: number, length: number): number;
  write(fd: number, data: Buffer, offset: number, length: number): Promise<number>;
  readSync(fd: number, into: Buffer, offset: number, length: number, position: number): number;
  sizeOf(fd: number): number;
  ftruncateSync(fd: number, length: number): void;
  fdatasync(fd: number): Promise<void>;
  fsync(fd: number): Promise<void>;
}

const writeAsync = promisify(fs.write);

export const nodeDisk: Disk = {
  mkdirSync: (path, mode) => void fs.mkdirSync(path, { recursive: true, mode }),
  readdirSync: (path) => fs.readdirSync(path),
  readFileSync: (path) => fs.readFileSync(path),
  readFile: (path) => fs.promises.readFile(path),
  rmSync: (path) => fs.rmSync(path, { force: true }),
  rm: (path) => fs.promises.rm(path, { force: true }),
  rename: (from, to) => fs.promises.rename(from, to),
  link: (existing, created) => fs.promises.link(existing, created),
  openSync: (path, flags, mode) => fs.openSync(path, flags, mode),
  open: promisify((path: string, flags: string, mode: number | undefined, cb: (err: NodeJS.ErrnoException | null, fd: number) => void) => fs.open(path, flags, mode, cb)),
  closeSync: (fd) => fs.closeSync(fd),
  close: promisify(fs.close),
  writeSync: (fd, data, offset, length) => fs.writeSync(fd, data, offset, length),
  write: async (fd, data, offset, length) => (await writeAsync(fd, data, offset, length)).bytesWritten,
  readSync: (fd, into, offset, length, position) => fs.readSync(fd, into, offset, length, position),
  sizeOf: (fd) => fs.fstatSync(fd).size,
  ftruncateSync: (fd, length) => fs.ftruncateSync(fd, length),
  fdatasync: promisify(fs.fdatasync),
  fsync: promisify(fs.fsync),
};

/** Writes all of `data` at the file's position; a write that makes no progress is a full disk. */
export async function writeAll(disk: Disk, fd: number, data: Buffer): Promise<void> {
  for (let off = 0; off < data.length; ) {
    const n = await disk.write(fd, data, off, data.length - off);
    if (n <= 0) throw Object.assign(new Error('ENOSPC: no space left on device, write made no progress'), { code: 'ENOSPC' });
    off += n;
  }
}

/** Bytes after the last newline of an open file: a record torn by a crash mid-append. 0 when it ends whole. */
export function tornTailBytes(disk: Disk, fd: number, size: number): number {
  // Nearly always the file ends whole, and one byte says so (a log page of a finished run asks this each time).
  const last = Buffer.alloc(1);
  if (size === 0 || (disk.readSync(fd, last, 0, 1, size - 1) === 1 && last[0] === 10)) return 0;
  const block = Buffer.alloc(64 * 1024);
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - block.length);
    const n = disk.readSync(fd, block, 0, end - start, start);
    const nl = block.subarray(0, n).lastIndexOf(10);
    if (nl >= 0) return size - (start + nl + 1);
    end = start;
  }
  return size;
}

/** An error's errno code and its text without the syscall ("ENOSPC", "no space left on device"). */
export function describeError(err: unknown): { code: string; message: string } {
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : 'EIO';
  const text = String(e?.message ?? err);
  const m = new RegExp(`^${code}: ([^,]*)`).exec(text);
  return { code, message: m ? m[1] : text };
}
