/**
 * A Disk (control-plane/store/disk.ts) that fails the calls a test names,
 * with a real errno error, and records every call it sees, so a test can
 * break a write at any step (the append, its fdatasync, the temp file, the
 * rename, the folder's fsync, the cut back) and heal it again.
 */
import { existsSync } from 'node:fs';
import { nodeDisk, type Disk } from '../../control-plane/store/disk.js';

export type Op = keyof Disk;
export type Errno = 'EIO' | 'ENOSPC' | 'EPERM' | 'EROFS';

const TEXT: Record<Errno, string> = {
  EIO: 'i/o error',
  ENOSPC: 'no space left on device',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
};

/** Calls that change the disk (what a full, read-only or dying disk refuses). */
export const WRITE_OPS: Op[] = ['mkdirSync', 'rmSync', 'rm', 'rename', 'link', 'openSync', 'open', 'writeSync', 'write', 'ftruncateSync', 'fdatasync', 'fsync'];

export interface Fault {
  ops: Op[];
  /** Only calls on a path (or an fd opened on one) matching this. */
  path?: RegExp;
  code: Errno;
  /** Fail this many matching calls, then let them through (default: until healed). */
  times?: number;
  /** writeSync/write: write half of what was asked and report that, instead of throwing (a disk that fills mid-write). */
  short?: boolean;
  /** Once it fires, every later write-side call fails too (a disk that dies at this step), the cut back included. */
  cascade?: boolean;
}

export class FaultyDisk implements Disk {
  /** Every call, in order: its op, its path, and whether it was made to fail. */
  readonly calls: { op: Op; path: string; failed: boolean }[] = [];
  private faults: Fault[] = [];
  private paths = new Map<number, string>();

  fail(f: Fault): this {
    this.faults.push({ ...f });
    return this;
  }

  heal(): this {
    this.faults = [];
    return this;
  }

  /** Throws (or, for a short write, returns the bytes to write) when a fault matches. */
  private check(op: Op, path: string, flags = ''): number | undefined {
    const call = { op, path, failed: false };
    this.calls.push(call);
    // Opening to read is never a write.
    if ((op === 'openSync' || op === 'open') && flags === 'r') return undefined;
    for (const f of this.faults) {
      if (!f.ops.includes(op) || (f.path && !f.path.test(path)) || f.times === 0) continue;
      if (f.times !== undefined) f.times--;
      if (f.cascade) this.faults.unshift({ ops: WRITE_OPS, code: f.code });
      call.failed = true;
      if (f.short) return -1;
      throw Object.assign(new Error(`${f.code}: ${TEXT[f.code]}, ${op} '${path}'`), { code: f.code, syscall: op, path });
    }
    return undefined;
  }

  private pathOf(fd: number) {
    return this.paths.get(fd) ?? `fd ${fd}`;
  }

  mkdirSync(path: string, mode: number) {
    // mkdir(2) of a folder that exists says EEXIST before EROFS or ENOSPC.
    if (!existsSync(path)) this.check('mkdirSync', path);
    nodeDisk.mkdirSync(path, mode);
  }
  readdirSync(path: string) {
    this.check('readdirSync', path);
    return nodeDisk.readdirSync(path);
  }
  readFileSync(path: string) {
    this.check('readFileSync', path);
    return nodeDisk.readFileSync(path);
  }
  async readFile(path: string) {
    this.check('readFile', path);
    return nodeDisk.readFile(path);
  }
  rmSync(path: string) {
    this.check('rmSync', path);
    nodeDisk.rmSync(path);
  }
  async rm(path: string) {
    this.check('rm', path);
    await nodeDisk.rm(path);
  }
  async rename(from: string, to: string) {
    this.check('rename', `${from} -> ${to}`);
    await nodeDisk.rename(from, to);
  }
  async link(existing: string, created: string) {
    this.check('link', `${existing} -> ${created}`);
    await nodeDisk.link(existing, created);
  }
  openSync(path: string, flags: string, mode?: number) {
    this.check('openSync', path, flags);
    const fd = nodeDisk.openSync(path, flags, mode);
    this.paths.set(fd, path);
    return fd;
  }
  async open(path: string, flags: string, mode?: number) {
    this.check('open', path, flags);
    const fd = await nodeDisk.open(path, flags, mode);
    this.paths.set(fd, path);
    return fd;
  }
  closeSync(fd: number) {
    this.check('closeSync', this.pathOf(fd));
    this.paths.delete(fd);
    nodeDisk.closeSync(fd);
  }
  async close(fd: number) {
    this.check('close', this.pathOf(fd));
    this.paths.delete(fd);
    await nodeDisk.close(fd);
  }
  writeSync(fd: number, data: Buffer, offset: number, length: number) {
    const short = this.check('writeSync', this.pathOf(fd));
    return nodeDisk.writeSync(fd, data, offset, short ? Math.floor(length / 2) : length);
  }
  async write(fd: number, data: Buffer, offset: number, length: number) {
    const short = this.check('write', this.pathOf(fd));
    return nodeDisk.write(fd, data, offset, short ? Math.floor(length / 2) : length);
  }
  readSync(fd: number, into: Buffer, offset: number, length: number, position: number) {
    this.check('readSync', this.pathOf(fd));
    return nodeDisk.readSync(fd, into, offset, length, position);
  }
  sizeOf(fd: number) {
    this.check('sizeOf', this.pathOf(fd));
    return nodeDisk.sizeOf(fd);
  }
  ftruncateSync(fd: number, length: number) {
    this.check('ftruncateSync', this.pathOf(fd));
    nodeDisk.ftruncateSync(fd, length);
  }
  async fdatasync(fd: number) {
    this.check('fdatasync', this.pathOf(fd));
    await nodeDisk.fdatasync(fd);
  }
  async fsync(fd: number) {
    this.check('fsync', this.pathOf(fd));
    await nodeDisk.fsync(fd);
  }
}
