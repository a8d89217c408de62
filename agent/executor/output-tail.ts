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
  /** Per stream: the flush timer of a partial line. */
  private partial: Record<Stream, { timer: NodeJS.Timeout } | undefined> = { stdout: undefined, stderr: undefined };
  private done = false;

  constructor(
    private readonly paths: AttemptPaths,
    start: Offsets,
    private readonly masker: Masker,
    /** True when the chunk is on disk (journaled): only then does the offsets file move past it. */
    private readonly emit: (stream: Stream, data: Buffer, offset: number) => boolean,
    /** The output files, already open for reading (the supervisor's own descriptors, opened with a+): this takes them over. */
    open?: Record<Stream, number>,
    private readonly warn?: (message: string) => void,
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
    if (end < this.pos[stream] || (end > 0 && this.rewritten(stream, fd))) {
      // The step truncated its own output: it opened /dev/stdout or /dev/stderr with ">" (">>" or ">&2" append).
      this.warn?.(`the step truncated its ${stream} (it opened /dev/${stream} with ">"); its output is read again from its start`);
      this.pos[stream] = 0;
      this.last[stream] = Buffer.alloc(0);
    }
    // Past the longest masked form twice: a cut before a possible secret still leaves READ_BYTES to send.
    const window = READ_BYTES + 2 * this.masker.holdBack;
    while (this.pos[stream] < end) {
      const want = Math.min(window, end - this.pos[stream]);
      const buf = Buffer.allocUnsafe(want);
      const n = readSync(fd, buf, 0, want, this.pos[stream]);
      if (n === 0) return;
      const data = buf.subarray(0, n);
      const more = n === window;
      let cut = final && !more ? n : data.lastIndexOf(0x0a) + 1;
      if (cut === 0 && (more || flushPartial)) {
        // A long line, or progress output that waited long enough: cut it, but never inside or just before
        // what may be a secret (its last holdBack bytes wait for the rest of the line).
        cut = this.masker.safeCut(data, Math.max(0, n - this.masker.holdBack));
        // Cannot happen with the window above; a full read must move on whatever.
        if (cut === 0 && more) cut = n;
      }
      if (cut > 0) this.send(stream, data.subarray(0, cut));
      // What is held back waits for more output (which reads again) or the end of the step.
      if (cut < n && !more && !final) return flushPartial ? undefined : this.armPartial(stream);
    }
  }

  /** The last bytes sent of each stream, to notice a file rewritten from its start (same size or larger). */
  private last: Record<Stream, Buffer> = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) };

  private rewritten(stream: Stream, fd: number): boolean {
    const last = this.last[stream];
    if (!last.length) return false;
    const now = Buffer.alloc(last.length);
    readSync(fd, now, 0, last.length, this.pos[stream] - last.length);
    return !now.equals(last);
  }

  private send(stream: Stream, raw: Buffer) {
    const keep = Math.min(16, raw.length);
    this.last[stream] = Buffer.concat([this.last[stream], raw.subarray(raw.length - keep)]).subarray(-16);
    clearTimeout(this.partial[stream]?.timer);
    this.partial[stream] = undefined;
    this.pos[stream] += raw.length;
    // Not journaled (the disk fails; it waits in memory): if the agent dies now, the next one reads it again.
    if (!this.emit(stream, this.masker.empty ? raw : this.masker.bytes(raw), this.pos[stream])) return;
    // Not O_APPEND (a positioned write would append) and not truncated (a kill right after would forget the offsets).
    if (this.offsetsFd < 0) this.offsetsFd = openSync(this.paths.offsets, constants.O_RDWR | constants.O_CREAT, 0o600);
    const text = `${String(this.pos.stdout).padStart(20)} ${String(this.pos.stderr).padStart(20)}\n`;
    writeSync(this.offsetsFd, text, 0);
  }

  /**
   * A partial line is left: what there is of it goes PARTIAL_FLUSH_MS after
   * it first appeared, growing or not (progress output streams, as from a pipe).
   */
  private armPartial(stream: Stream) {
    if (this.partial[stream]) return;
    const timer = setTimeout(() => {
      this.partial[stream] = undefined;
      if (!this.done) this.read(stream, false, true);
    }, PARTIAL_FLUSH_MS);
    this.partial[stream] = { timer };
  }

  private fileEnd(fd: number): number {
    return fstatSync(fd).size;
  }
}
