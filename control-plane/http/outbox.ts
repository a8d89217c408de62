/**
 * What one WebSocket client is sent. Changes are coalesced: each is queued
 * under a key (one agent, one run's summary, one step) with a function that
 * renders it when the batch goes out, FLUSH_MS after the first, so a key
 * is sent at most 1000/FLUSH_MS times a second with its latest state. A
 * client whose socket has more than MAX_BUFFERED_BYTES waiting is dropped:
 * the server does not hold an unbounded backlog for a reader that stalls.
 */
import { WebSocket } from 'ws';

/** Delay that lets a burst of changes share one message per key: at most ten a second each. */
export const FLUSH_MS = 100;
/** A client with more than this waiting in its socket is closed (it reconnects and gets a fresh snapshot). */
export const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

export type Render = () => object | undefined;

export class Outbox {
  private pending = new Map<string, Render>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ws: WebSocket,
    private readonly onSlow: (buffered: number) => void,
  ) {}

  /** Sends now, in order with earlier direct sends (not with queued ones). */
  send(msg: object): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (this.ws.bufferedAmount > MAX_BUFFERED_BYTES) return this.onSlow(this.ws.bufferedAmount);
    this.ws.send(JSON.stringify(msg));
  }

  /** Queues a change under `key`: a later one with the same key replaces it in the same batch. */
  queue(key: string, render: Render): void {
    this.pending.set(key, render);
    this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  /** Drops queued changes whose key starts with `prefix` (a subscription was replaced or ended). */
  drop(prefix: string): void {
    for (const k of this.pending.keys()) if (k.startsWith(prefix)) this.pending.delete(k);
  }

  flush(): void {
    this.timer = undefined;
    const batch = [...this.pending.values()];
    this.pending.clear();
    for (const render of batch) {
      const msg = render();
      if (msg) this.send(msg);
    }
  }

  close(): void {
    clearTimeout(this.timer);
    this.pending.clear();
  }
}
