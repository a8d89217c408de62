/**
 * The fleet's sample history: one JSON line per sample in
 * `<data dir>/fleet-samples.ndjson`, kept FLEET_SAMPLE_RETENTION_MS, all of
 * it also in memory (a week at one sample per 15 s is about 40 000 samples,
 * a few MB), so a read by time range never touches the disk.
 *
 * Appending writes the line at once (write(2), no fsync: a power cut may
 * lose the last few samples, a crash of the process none). A disk that
 * refuses it (ENOSPC, EIO, EROFS, …) never throws and never tears a line
 * into the next: the file is cut back to its last whole line, the line
 * waits in memory (at most PENDING_MAX of them) and goes with the next
 * append; the failure is logged once per error code. A torn last line left
 * by a crash is cut when the file is opened; unreadable lines are skipped.
 *
 * The file is rewritten (temp file, fsync, rename) once it holds more
 * expired lines than live ones, so it stays within about twice the
 * retention.
 */
import { dirname } from 'node:path';
import { describeError, nodeDisk, tornTailBytes, writeAll, type Disk } from './disk.js';

/** One sample of the fleet, taken by the control plane every FLEET_SAMPLE_INTERVAL_MS (metrics/fleet-sampler.ts). */
export interface FleetSample {
  /** When it was taken, ms. */
  t: number;
  /** Mean CPU % over the connected agents that have sent a heartbeat (0 when none). */
  cpuPercent: number;
  /** Mean memory % over the same agents. */
  memoryPercent: number;
  /** Agents connected when it was taken. */
  connected: number;
  /** Agents known (connected, disconnected or lost). */
  agents: number;
}

/** How long samples are kept: a week, the longest window `drover stats --since` is useful over. */
export const FLEET_SAMPLE_RETENTION_MS = 7 * 24 * 3_600_000;

/** Samples waiting for a disk that refuses them, at most; older ones are dropped past it (about 4 h at one per 15 s). */
const PENDING_MAX = 1000;

/**
 * Samples in time order within a retention, in memory: the memory store's
 * whole history, and the durable file's view of its own.
 */
export class SampleWindow {
  private samples: FleetSample[] = [];

  constructor(readonly retentionMs: number = FLEET_SAMPLE_RETENTION_MS) {}

  get size(): number {
    return this.samples.length;
  }

  all(): readonly FleetSample[] {
    return this.samples;
  }

  /** Adds a sample (in order, or inserted where it belongs) and drops those older than the retention before the newest. Returns how many were dropped. */
  add(s: FleetSample): number {
    let i = this.samples.length;
    while (i > 0 && this.samples[i - 1].t > s.t) i--;
    this.samples.splice(i, 0, s);
    const keepFrom = this.lowerBound(this.samples[this.samples.length - 1].t - this.retentionMs);
    if (keepFrom > 0) this.samples.splice(0, keepFrom);
    return keepFrom;
  }

  /** Samples with fromMs <= t <= toMs, oldest first. */
  range(fromMs: number, toMs: number): FleetSample[] {
    const out: FleetSample[] = [];
    for (let i = this.lowerBound(fromMs); i < this.samples.length && this.samples[i].t <= toMs; i++) out.push(this.samples[i]);
    return out;
  }

  /** Index of the first sample with t >= ms. */
  private lowerBound(ms: number): number {
    let lo = 0;
    let hi = this.samples.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.samples[mid].t < ms) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

export interface FleetSampleFileOptions {
  disk?: Disk;
  retentionMs?: number;
  /** Told of write failures (once per error code), recoveries and skipped lines. */
  warn?: (fields: Record<string, unknown>, message: string) => void;
}

export class FleetSampleFile {
  private readonly window: SampleWindow;
  private readonly disk: Disk;
  private readonly warn: NonNullable<FleetSampleFileOptions['warn']>;
  private fd = -1;
  /** Bytes of whole lines in the file. */
  private size = 0;
  /** Lines in the file, expired ones included. */
  private lines = 0;
  /** Lines not written yet, oldest first. */
  private pending: string[] = [];
  private cutDue = false;
  private rewriting: Promise<void> | undefined;
  /** The error code last logged ('' while writes succeed). */
  private failing = '';

  constructor(
    readonly path: string,
    opts: FleetSampleFileOptions = {},
  ) {
    this.disk = opts.disk ?? nodeDisk;
    this.warn = opts.warn ?? (() => undefined);
    this.window = new SampleWindow(opts.retentionMs);
  }

  /** Loads the file (none: an empty history). A file that cannot be read is logged and the history starts empty; samples are not worth refusing to start over. */
  open() {
    let text = '';
    try {
      text = this.disk.readFileSync(this.path).toString('utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.warn({ file: this.path, ...describeError(err) }, 'cannot read the fleet sample history; starting without it');
    }
    let unreadable = 0;
    const rows = text.split('\n');
    rows.forEach((line, i) => {
      if (!line) return;
      try {
        const s = JSON.parse(line) as FleetSample;
        if (typeof s?.t !== 'number') throw new Error('not a sample');
        this.window.add(s);
        this.lines++;
      } catch {
        if (i < rows.length - 1) unreadable++;
      }
    });
    if (unreadable) this.warn({ file: this.path, lines: unreadable }, 'unreadable lines in the fleet sample history were skipped');
  }

  append(s: FleetSample) {
    this.window.add(s);
    this.pending.push(`${JSON.stringify(s)}\n`);
    if (this.pending.length > PENDING_MAX) this.pending.splice(0, this.pending.length - PENDING_MAX);
    if (this.rewriting) return;
    this.writePending();
    if (!this.failing && this.lines - this.window.size > Math.max(this.window.size, 100)) this.rewriting = this.rewrite().finally(() => (this.rewriting = undefined));
  }

  range(fromMs: number, toMs: number): FleetSample[] {
    return this.window.range(fromMs, toMs);
  }

  /** Resolves once a rewrite in progress is done (tests, and close). */
  async idle() {
    await this.rewriting;
  }

  async close() {
    await this.rewriting;
    this.writePending();
    this.closeFd();
  }

  private writePending() {
    if (!this.pending.length) return;
    try {
      if (this.fd < 0) this.openForAppend();
      if (this.cutDue) {
        this.disk.ftruncateSync(this.fd, this.size);
        this.cutDue = false;
      }
      const data = Buffer.from(this.pending.join(''));
      const n = this.disk.writeSync(this.fd, data, 0, data.length);
      if (n < data.length) throw Object.assign(new Error(`ENOSPC: no space left on device, short write to ${this.path}`), { code: 'ENOSPC' });
      this.size += data.length;
      this.lines += this.pending.length;
      this.pending = [];
      if (this.failing) this.warn({ file: this.path }, 'the fleet sample history can be written again');
      this.failing = '';
    } catch (err) {
      if (this.fd >= 0) {
        try {
          this.disk.ftruncateSync(this.fd, this.size);
        } catch {
          this.cutDue = true;
        }
      }
      const { code, message } = describeError(err);
      if (code !== this.failing) this.warn({ file: this.path, code, err: message, waiting: this.pending.length }, 'cannot write the fleet sample history; samples wait in memory and go with the next one');
      this.failing = code;
    }
  }

  private openForAppend() {
    const fd = this.disk.openSync(this.path, 'a+', 0o600);
    try {
      const size = this.disk.sizeOf(fd);
      const torn = tornTailBytes(this.disk, fd, size);
      if (torn) this.disk.ftruncateSync(fd, size - torn);
      this.size = size - torn;
      this.fd = fd;
    } catch (err) {
      this.disk.closeSync(fd);
      throw err;
    }
  }

  /** Writes the live samples to a temp file and renames it over the file; appends wait meanwhile. A failure leaves the old file, which still holds everything. */
  private async rewrite() {
    const samples = this.window.all().slice();
    const waiting = this.pending;
    this.pending = [];
    const tmp = `${this.path}.tmp`;
    try {
      const fd = await this.disk.open(tmp, 'w', 0o600);
      try {
        await writeAll(this.disk, fd, Buffer.from(samples.map((s) => `${JSON.stringify(s)}\n`).join('')));
        await this.disk.fsync(fd);
      } finally {
        await this.disk.close(fd);
      }
      await this.disk.rename(tmp, this.path);
    } catch (err) {
      this.pending = [...waiting, ...this.pending];
      this.warn({ file: this.path, ...describeError(err) }, 'cannot rewrite the fleet sample history; it keeps its expired lines until the next try');
      this.lines = 0; // next try after as many appends again
      return;
    }
    this.closeFd();
    this.lines = samples.length;
    this.writePending();
    // Made durable here; a power cut before it leaves the old file (every sample but those taken since).
    await this.syncDir().catch(() => undefined);
  }

  private async syncDir() {
    const dir = await this.disk.open(dirname(this.path), 'r');
    try {
      await this.disk.fsync(dir);
    } finally {
      await this.disk.close(dir);
    }
  }

  private closeFd() {
    if (this.fd < 0) return;
    try {
      this.disk.closeSync(this.fd);
    } catch {
      // Its lines were written; close(2) has nothing more to say about them that matters.
    }
    this.fd = -1;
  }
}
