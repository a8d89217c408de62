/**
 * `--watch`: a view kept up to date from a stream. On a terminal the table is
 * redrawn in place (log-update) and once a second so "2s ago" keeps counting;
 * elsewhere (a pipe, a file, a test) each new table is printed after a blank
 * line, only when it changed. Redraws are coalesced: a burst of messages (the
 * snapshot a watch stream starts with, a big fan-out) draws once. Ctrl-C ends
 * the watch with exit code 0.
 */
import type { createLogUpdate } from 'log-update';

/** A burst of messages within this long draws one table. */
export const COALESCE_MS = 100;

/** A terminal view is redrawn at least this often, for its relative times. */
const TICK_MS = 1000;

/** Where frames go: a terminal redraws in place, anything else gets each frame after the last. */
export class Screen {
  private readonly live: ReturnType<typeof createLogUpdate> | undefined;
  private last: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly tick: NodeJS.Timeout | undefined;

  /** A screen on `stream`; log-update (and its ANSI width tables) is loaded only for a terminal, so a command that never watches never loads it. */
  static async open(render: () => string, stream: NodeJS.WriteStream = process.stdout): Promise<Screen> {
    return new Screen(render, stream, stream.isTTY ? (await import('log-update')).createLogUpdate(stream) : undefined);
  }

  private constructor(
    private readonly render: () => string,
    private readonly stream: NodeJS.WriteStream,
    live: ReturnType<typeof createLogUpdate> | undefined,
  ) {
    this.live = live;
    if (this.live) this.tick = setInterval(() => this.draw(), TICK_MS).unref();
  }

  /** Something changed: draw soon. */
  changed(): void {
    this.timer ??= setTimeout(() => this.draw(), COALESCE_MS);
  }

  /** Draws now. */
  now(): void {
    this.draw();
  }

  /** Draws what is pending now and stops redrawing; the last frame stays on screen. */
  close(): void {
    if (this.timer) this.draw();
    if (this.tick) clearInterval(this.tick);
    this.live?.done();
  }

  private draw(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const frame = this.render();
    if (this.live) return void this.live(frame.replace(/\n$/, ''));
    if (frame === this.last) return;
    this.stream.write((this.last === undefined ? '' : '\n') + frame);
    this.last = frame;
  }
}

/**
 * Feeds every item of `source` to `apply` and redraws `render()` after each
 * burst, until the stream ends or Ctrl-C (which ends the stream, so the
 * command finishes normally: exit code 0, client closed). With `initial`
 * (a list read just before), the first table is drawn at once, even an empty
 * one: a watch stream whose snapshot is empty sends nothing until a change.
 */
export async function watch<T>(source: AsyncIterableIterator<T, undefined, undefined>, apply: (item: T) => void, render: () => string, initial?: readonly T[]): Promise<void> {
  const screen = await Screen.open(render);
  const stop = () => void source.return?.();
  // `on`, not `once`: log-update's signal-exit re-raises SIGINT (exit 130) when it finds no other listener left.
  process.on('SIGINT', stop);
  if (initial) {
    for (const item of initial) apply(item);
    screen.now();
  }
  try {
    for await (const item of source) {
      apply(item);
      screen.changed();
    }
  } finally {
    process.off('SIGINT', stop);
    screen.close();
  }
}
