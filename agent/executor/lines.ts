/**
 * Cuts a process's output at line ends, so every log chunk the agent sends
 * holds whole lines. A partial line is held until its newline arrives, until
 * PARTIAL_FLUSH_MS pass without one (progress output), or until it reaches
 * MAX_PARTIAL_BYTES.
 */
export const PARTIAL_FLUSH_MS = 250;
export const MAX_PARTIAL_BYTES = 64 * 1024;

export class LineSplitter {
  private partial: Buffer = Buffer.alloc(0);
  private timer: NodeJS.Timeout | undefined;
  private pushes = 0;

  constructor(private readonly emit: (chunk: Buffer) => void) {}

  push(data: Buffer): void {
    this.pushes++;
    const buf = this.partial.length ? Buffer.concat([this.partial, data]) : data;
    const end = buf.lastIndexOf(0x0a) + 1;
    if (end > 0) this.emit(buf.subarray(0, end));
    this.partial = buf.subarray(end);
    if (this.partial.length >= MAX_PARTIAL_BYTES) return this.flush();
    if (this.partial.length && !this.timer) this.arm();
  }

  /**
   * The partial-line flush. When the timer fires late (a busy event loop),
   * the rest of the line may already wait in the pipe: the flush is deferred
   * past the I/O phase (setImmediate), and dropped if output arrived
   * meanwhile, so a busy agent does not cut a line in two.
   */
  private arm(): void {
    this.timer = setTimeout(() => {
      const seen = this.pushes;
      setImmediate(() => {
        if (this.pushes === seen) return this.flush();
        this.timer = undefined;
        if (this.partial.length) this.arm();
      });
    }, PARTIAL_FLUSH_MS);
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.partial.length) return;
    const rest = this.partial;
    this.partial = Buffer.alloc(0);
    this.emit(rest);
  }
}
