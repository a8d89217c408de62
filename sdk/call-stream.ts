/**
 * A gRPC server stream as an async iterator whose `return()` cancels the call
 * at once, even while a `next()` is waiting: leaving a `for await` loop, or
 * calling `return()` from elsewhere, ends the call on the server too.
 *
 * Messages are buffered; above HIGH_WATER the stream is paused so a slow
 * consumer applies back-pressure instead of growing memory.
 */
import type * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';

/** Buffered messages above which the underlying stream is paused. */
const HIGH_WATER = 256;

type Waiter<U> = { resolve: (r: IteratorResult<U, undefined>) => void; reject: (e: unknown) => void };

/** Iterates `start()`'s messages through `map` (which may return undefined to skip one). */
export class CallStream<T, U> implements AsyncIterableIterator<U, undefined, undefined> {
  private call: grpc.ClientReadableStream<T> | undefined;
  private readonly buffer: U[] = [];
  private readonly waiters: Waiter<U>[] = [];
  private started: Promise<void> | undefined;
  private finished = false;
  private failure: unknown;

  constructor(
    private readonly start: () => Promise<grpc.ClientReadableStream<T>>,
    private readonly map: (message: T) => U | undefined,
    private readonly mapError: (err: unknown) => unknown,
    /** Asked when the stream fails before its first message (hop: how many times already): true opens it again with `start`. */
    private readonly again: (err: unknown, hop: number) => boolean = () => false,
  ) {}
  private hops = 0;
  private gotAny = false;

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<U, undefined>> {
    this.started ??= this.open();
    await this.started;
    const value = this.buffer.shift();
    if (value !== undefined) {
      if (this.buffer.length < HIGH_WATER / 2) this.call?.resume();
      return { value, done: false };
    }
    if (this.failure !== undefined) throw this.failure;
    if (this.finished) return { value: undefined, done: true };
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  async return(): Promise<IteratorResult<U, undefined>> {
    if (!this.finished) {
      this.finished = true;
      this.call?.cancel();
    }
    this.buffer.length = 0;
    for (const w of this.waiters.splice(0)) w.resolve({ value: undefined, done: true });
    return { value: undefined, done: true };
  }

  private async open(): Promise<void> {
    try {
      const call = await this.start();
      if (this.finished) {
        call.on('error', () => {});
        call.cancel();
        return;
      }
      this.call = call;
    } catch (err) {
      this.finished = true;
      this.failure = this.mapError(err);
      return;
    }
    const call = this.call;
    call.on('data', (message: T) => {
      this.gotAny = true;
      const value = this.map(message);
      if (value === undefined || this.finished) return;
      const waiter = this.waiters.shift();
      if (waiter) waiter.resolve({ value, done: false });
      else if (this.buffer.push(value) >= HIGH_WATER) call.pause();
    });
    call.on('error', (err: grpc.ServiceError) => {
      if (this.finished && err.code === status.CANCELLED) return;
      if (!this.finished && !this.gotAny && this.again(err, this.hops)) {
        this.hops++;
        void this.open();
        return;
      }
      this.finished = true;
      this.failure = this.mapError(err);
      for (const w of this.waiters.splice(0)) w.reject(this.failure);
    });
    call.on('end', () => {
      this.finished = true;
      for (const w of this.waiters.splice(0)) w.resolve({ value: undefined, done: true });
    });
  }
}
