/**
 * The fleet samples of `drover stats` in a stream as well, for the
 * JetStream store: stream DROVER_SAMPLES, one subject, messages kept as
 * long as the stats look back (FLEET_SAMPLE_RETENTION_MS, JetStream's
 * max_age drops older ones). The local sample file (fleet-samples.ts) stays
 * the read cache; open() adds what the stream has after its newest sample,
 * so a control plane on an empty data dir has the week of history too.
 *
 * Samples carry no promise (one every 15 s, a lost one is a gap in a
 * chart): each is published on its own, not in the store's writes, and
 * one that fails waits (at most PENDING_MAX) for the next sample; failures
 * are logged once per error code. Duplicates are told by their time: a
 * sample at or before the cache's newest is not added again.
 */
import { nanos, type NatsConnection } from '@nats-io/nats-core';
import { DeliverPolicy, JetStreamApiError, StorageType, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from '../log.js';
import { FLEET_SAMPLE_RETENTION_MS, type FleetSample, type FleetSampleFile } from './fleet-samples.js';
import { whileElecting } from './jetstream-retry.js';

export const SAMPLE_STREAM = 'DROVER_SAMPLES';
/** Its one subject (only the control plane's NATS user may publish on drover.v1.samples.>: security/nats-auth.ts). */
export const SAMPLE_SUBJECT = 'drover.v1.samples.fleet';
/** Samples waiting for a stream that refuses them, at most (about 4 h at one per 15 s); older ones are dropped. */
const PENDING_MAX = 1000;
/** Messages asked for at once while catching up. */
const FETCH_MESSAGES = 1000;

export interface JetStreamSamplesOptions {
  nc: NatsConnection;
  /** The store's sample file: the cache this fills from the stream. */
  samples: FleetSampleFile;
  replicas: number;
  /** FLEET_SAMPLE_RETENTION_MS by default: as long as `drover stats` looks back. */
  retentionMs?: number;
  publishTimeoutMs: number;
  rideThroughMs: number;
  log?: Logger;
}

export class JetStreamSamples {
  private js: JetStreamClient | undefined;
  private pending: FleetSample[] = [];
  private sending: Promise<void> | undefined;
  /** The error code last logged ('' while publishes succeed). */
  private failing = '';

  constructor(private readonly o: JetStreamSamplesOptions) {}

  /** Makes (or binds) the stream and adds to the cache the samples it lacks. */
  async open(js: JetStreamClient, jsm: JetStreamManager) {
    const retentionMs = this.o.retentionMs ?? FLEET_SAMPLE_RETENTION_MS;
    const retry = <T>(fn: () => Promise<T>) => whileElecting(fn, this.o.rideThroughMs);
    await retry(async () => {
      try {
        const info = await jsm.streams.info(SAMPLE_STREAM);
        if (info.config.num_replicas !== this.o.replicas || info.config.max_age !== nanos(retentionMs)) await jsm.streams.update(SAMPLE_STREAM, { num_replicas: this.o.replicas, max_age: nanos(retentionMs) });
      } catch (err) {
        if (!(err instanceof JetStreamApiError) || err.code !== 10059) throw err; // 10059: stream not found
        await jsm.streams.add({ name: SAMPLE_STREAM, subjects: [SAMPLE_SUBJECT], storage: StorageType.File, num_replicas: this.o.replicas, max_age: nanos(retentionMs), description: 'drover fleet samples for drover stats' });
      }
    });
    const cached = this.o.samples.range(-Infinity, Infinity);
    const newest = cached.length ? cached[cached.length - 1].t : -Infinity;
    const info = await retry(() => jsm.streams.info(SAMPLE_STREAM));
    let added = 0;
    if (info.state.messages > 0) {
      const since = Math.max(newest, Date.now() - retentionMs);
      const consumer = await retry(() => js.consumers.get(SAMPLE_STREAM, { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(since).toISOString() }));
      try {
        for (let seq = 0; seq < info.state.last_seq; ) {
          const batch = await consumer.fetch({ max_messages: FETCH_MESSAGES, expires: this.o.publishTimeoutMs });
          let got = 0;
          for await (const m of batch) {
            got++;
            seq = m.seq;
            const s = m.json<FleetSample>();
            if (typeof s?.t === 'number' && s.t > newest) {
              this.o.samples.append(s);
              added++;
            }
            if (seq >= info.state.last_seq || m.info.pending === 0) {
              seq = info.state.last_seq;
              break;
            }
          }
          if (!got) break;
        }
      } finally {
        await consumer.delete().catch(() => undefined);
      }
    }
    this.js = js;
    this.o.log?.info({ stream: SAMPLE_STREAM, cached: cached.length, added }, 'fleet samples caught up from NATS JetStream');
  }

  /** Publishes a sample (the cache has it already), with those still waiting; never throws. */
  publish(s: FleetSample) {
    this.pending.push(s);
    if (this.pending.length > PENDING_MAX) this.pending.splice(0, this.pending.length - PENDING_MAX);
    this.sending ??= this.send().finally(() => (this.sending = undefined));
  }

  /** Waits for a publish in flight (close, tests). */
  async idle() {
    await this.sending;
  }

  private async send() {
    if (!this.js) return;
    while (this.pending.length) {
      const s = this.pending[0];
      try {
        // The sample's time is its message id: a retry is a duplicate the stream drops.
        await this.js.publish(SAMPLE_SUBJECT, JSON.stringify(s), { msgID: `sample-${s.t}`, timeout: this.o.publishTimeoutMs });
      } catch (err) {
        const code = err instanceof JetStreamApiError ? `JS_${err.code}` : (err as Error).name || 'NATS_ERROR';
        if (code !== this.failing) this.o.log?.warn({ stream: SAMPLE_STREAM, code, err: (err as Error).message, waiting: this.pending.length }, 'cannot publish a fleet sample to NATS JetStream; it waits and goes with the next one');
        this.failing = code;
        return;
      }
      this.pending.shift();
      if (this.failing) this.o.log?.info({ stream: SAMPLE_STREAM }, 'fleet samples are published to NATS JetStream again');
      this.failing = '';
    }
  }
}
