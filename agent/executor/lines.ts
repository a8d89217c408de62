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

  constructor(private readonly emit: (chunk: Buffer) => void) {}

  push(data: Buffer): void {
    const buf = this.partial.length ? Buffer.concat([this.partial, data]) : data;
    const end = buf.lastIndexOf(0x0a) + 1;
    if (end > 0) this.emit(buf.subarray(0, end));
    this.partial = buf.subarray(end);
    if (this.partial.length >= MAX_PARTIAL_BYTES) return this.flush();
    if (this.partial.length && !this.timer) this.timer = setTimeout(() => this.flush(), PARTIAL_FLUSH_MS);
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
