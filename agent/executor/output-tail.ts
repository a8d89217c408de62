/**
 * Streams a supervised step's output files (executor/supervise.ts) as they
 * grow, as the pipes did before: chunks hold whole lines; a partial line is
 * sent once PARTIAL_FLUSH_MS pass without more output, or once it reaches
 * READ_BYTES; secrets are masked before anything leaves.
 *
 * The state is one number per stream, the raw offset consumed: every chunk
 * is emitted with the offset after it (it travels in LogChunk.offset, so the
 * journal holds it) and then written to the attempt's `offsets` file. An
 * agent that restarts resumes at the larger of the two, so each byte is
 * reported exactly once. Bytes not yet safe to send (a partial line, a
 * possible secret cut in two) are never held in memory: they stay in the
 * file and are read again with what follows.
 *
 * New output is noticed through inotify on the attempt's directory (fs.watch),
 * with a slow poll as a fallback.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync, readSync, watch, writeSync, type FSWatcher } from 'node:fs';
import { PARTIAL_FLUSH_MS } from './lines.js';
import type { Masker } from './mask.js';
import type { AttemptPaths } from './supervise.js';

export type Stream = 'stdout' | 'stderr';
export type Offsets = Record<Stream, number>;

/** Read size; also the most a chunk holds, and the longest partial line held back (as MAX_PARTIAL_BYTES for pipes). */
const READ_BYTES = 64 * 1024;
/** Poll interval when inotify cannot watch the directory (watch limit reached). */
const FALLBACK_POLL_MS = 250;

export function readOffsets(paths: AttemptPaths): Offsets {
  try {
    const [stdout, stderr] = readFileSync(paths.offsets, 'latin1').trim().split(/\s+/).map(Number);
    return { stdout: stdout || 0, stderr: stderr || 0 };
  } catch {
    return { stdout: 0, stderr: 0 };
  }
}

export class AttemptOutput {
  private fds: Record<Stream, number> = { stdout: -1, stderr: -1 };
  private pos: Offsets;
  private offsetsFd = -1;
  private watcher: FSWatcher | undefined;
  private poller: NodeJS.Timeout | undefined;
  private scheduled = false;
  /** Per stream: the file end seen when a partial line was left, and its flush timer. */
  private partial: Record<Stream, { end: number; timer: NodeJS.Timeout } | undefined> = { stdout: undefined, stderr: undefined };
  private done = false;

  constructor(
    private readonly paths: AttemptPaths,
    start: Offsets,
    private readonly masker: Masker,
    private readonly emit: (stream: Stream, data: Buffer, offset: number) => void,
    /** The output files, already open for reading (the supervisor's own descriptors, opened with a+): this takes them over. */
    open?: Record<Stream, number>,
  ) {
    this.pos = { ...start };
    if (open) this.fds = { ...open };
  }

  /** Starts following the files. */
  follow(): this {
    try {
      this.watcher = watch(this.paths.dir, () => this.schedule());
      this.watcher.on('error', () => this.fallBack());
    } catch {
      this.fallBack();
    }
    this.schedule();
    return this;
  }

  /** The step ended: sends everything left, partial lines included, and stops. */
  finish(): void {
    if (this.done) return;
    this.read('stdout', true);
    this.read('stderr', true);
    this.stop();
  }

  /** Stops without reading further (the attempt is abandoned; its files stay). */
  stop(): void {
    this.done = true;
    this.watcher?.close();
    clearInterval(this.poller);
    for (const s of ['stdout', 'stderr'] as const) {
      clearTimeout(this.partial[s]?.timer);
      if (this.fds[s] >= 0) closeSync(this.fds[s]);
      this.fds[s] = -1;
    }
    if (this.offsetsFd >= 0) closeSync(this.offsetsFd);
    this.offsetsFd = -1;
  }

  private fallBack() {
    this.watcher?.close();
    this.watcher = undefined;
    this.poller ??= setInterval(() => this.schedule(), FALLBACK_POLL_MS);
  }

  /** Many writes, one read: inotify reports each write. */
  private schedule() {
    if (this.scheduled || this.done) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.done) return;
      this.read('stdout', false);
      this.read('stderr', false);
    });
  }

  private fd(stream: Stream): number {
    if (this.fds[stream] < 0) {
      try {
        this.fds[stream] = openSync(this.paths[stream], 'r');
      } catch {
        return -1;
      }
    }
    return this.fds[stream];
  }

  /** Reads from the stream's offset and emits what is safe to send; `final` sends the rest too. */
  private read(stream: Stream, final: boolean, flushPartial = false) {
    const fd = this.fd(stream);
    if (fd < 0) return;
    // Most steps print little or nothing: no read and no buffer for a file that did not grow.
    const end = this.fileEnd(fd);
    while (this.pos[stream] < end) {
      const want = Math.min(READ_BYTES, end - this.pos[stream]);
      const buf = Buffer.allocUnsafe(want);
      const n = readSync(fd, buf, 0, want, this.pos[stream]);
      if (n === 0) return;
      const data = buf.subarray(0, n);
      const more = n === READ_BYTES;
      let cut = final && !more ? n : data.lastIndexOf(0x0a) + 1;
      if (cut === 0 && (more || flushPartial)) {
        // A long line, or progress output that waited long enough: cut it, but never inside or just before
        // what may be a secret (its last holdBack bytes wait for the rest of the line).
        cut = this.masker.safeCut(data, Math.max(0, n - this.masker.holdBack));
        // A full read must move on, even inside a secret longer than a read.
        if (cut === 0 && more) cut = n;
      }
      if (cut > 0) this.send(stream, data.subarray(0, cut));
      // What is held back waits for more output (which reads again) or the end of the step.
      if (cut < n && !more && !final) return flushPartial ? undefined : this.armPartial(stream);
    }
  }

  private send(stream: Stream, raw: Buffer) {
    clearTimeout(this.partial[stream]?.timer);
    this.partial[stream] = undefined;
    this.pos[stream] += raw.length;
    this.emit(stream, this.masker.empty ? raw : this.masker.bytes(raw), this.pos[stream]);
    // Not O_APPEND (a positioned write would append) and not truncated (a kill right after would forget the offsets).
    if (this.offsetsFd < 0) this.offsetsFd = openSync(this.paths.offsets, constants.O_RDWR | constants.O_CREAT, 0o600);
    const text = `${String(this.pos.stdout).padStart(20)} ${String(this.pos.stderr).padStart(20)}\n`;
    writeSync(this.offsetsFd, text, 0);
  }

  /** A partial line is left: send it if nothing more comes within PARTIAL_FLUSH_MS. */
  private armPartial(stream: Stream) {
    const fd = this.fds[stream];
    const end = fd >= 0 ? this.fileEnd(fd) : 0;
    const p = this.partial[stream];
    if (p && p.end === end) return;
    clearTimeout(p?.timer);
    const timer = setTimeout(() => {
      if (this.done) return;
      const now = this.fds[stream] >= 0 ? this.fileEnd(this.fds[stream]) : 0;
      this.partial[stream] = undefined;
      // Output came meanwhile: an ordinary read handles it (and may complete the line).
      this.read(stream, false, now === end);
    }, PARTIAL_FLUSH_MS);
    this.partial[stream] = { end, timer };
  }

  private fileEnd(fd: number): number {
    return fstatSync(fd).size;
  }
}
