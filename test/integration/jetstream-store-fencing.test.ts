/**
 * JetStreamStore in this process against a real nats-server (one node,
 * replicas 1): a second writer on the same stream is refused (the fencing a
 * leader election builds on), and snapshots in the object store plus the
 * messages after them load the same state.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, describe, expect, it } from 'vitest';
import { JetStreamStore, STATE_STREAM } from '../../control-plane/store/jetstream-store.js';
import type { AgentRecord } from '../../control-plane/store/store.js';
import { tempDir } from '../helpers/cluster.js';
import { startNatsServer } from '../helpers/nats.js';

const conns: NatsConnection[] = [];
afterAll(async () => {
  await Promise.all(conns.map((c) => c.close()));
});

function agent(name: string, seq: number): AgentRecord {
  return {
    name,
    labels: { pool: 'x' },
    facts: { hostname: name, os: 'linux', osRelease: '', arch: 'x64', cpuModel: '', cpuCount: 1, memoryBytes: 1, disks: [], ipAddresses: [], agentVersion: 't' },
    firstSeenMs: 1,
    lastSeenMs: seq,
    appliedSeq: seq,
    instanceId: 'i',
    draining: false,
  };
}

async function store(url: string, opts: { snapshotMinBytes?: number } = {}) {
  const nc = await connect({ servers: url });
  conns.push(nc);
  const s = new JetStreamStore({ nc, dataDir: tempDir('drover-jsf-'), replicas: 1, publishTimeoutMs: 2000, ...opts });
  await s.open();
  return s;
}

describe('jetstream store - fencing and snapshots', () => {
  it('jetstream store - a second writer on the same stream is refused: the first one becomes unhealthy with FENCED and keeps what it had', async () => {
    const nats = await startNatsServer();
    const a = await store(nats.url);
    a.putAgent(agent('one', 1));
    await a.flush();
    const b = await store(nats.url);
    expect(b.getAgent('one')?.appliedSeq).toBe(1);
    b.putAgent(agent('two', 1));
    await b.flush();

    a.putAgent(agent('one', 2));
    const refused = await a.flush().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(Error);
    const h = a.health();
    expect(h.healthy).toBe(false);
    if (!h.healthy) {
      expect(h.code).toBe('FENCED');
      expect(h.where).toBe('NATS JetStream (stream DROVER_STATE)');
      expect(h.message).toMatch(/^another writer appended to DROVER_STATE \(.*wrong last sequence.*\): only one control plane may write its state; stop the other one$/);
    }
    // The refused change never reached the stream: a third reader sees b's state, not a's.
    const c = await store(nats.url);
    expect(c.getAgent('one')?.appliedSeq).toBe(1);
    expect(c.getAgent('two')).toBeDefined();
    await Promise.all([a.close(), b.close(), c.close()]);
  }, 30_000);

  it('jetstream store - two writers opening an empty stream at once: the first batch is fenced too, only one of them appends', async () => {
    const nats = await startNatsServer();
    const [a, b] = await Promise.all([store(nats.url), store(nats.url)]);
    a.putAgent(agent('from-a', 1));
    b.putAgent(agent('from-b', 1));
    const results = await Promise.allSettled([a.flush(), b.flush()]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const loser = results[0].status === 'rejected' ? a : b;
    const h = loser.health();
    expect(!h.healthy && h.code).toBe('FENCED');
    const c = await store(nats.url);
    expect(c.listAgents().map((x) => x.name)).toEqual([results[0].status === 'fulfilled' ? 'from-a' : 'from-b']);
    await Promise.all([a.close(), b.close(), c.close()]);
  }, 30_000);

  it('jetstream store - snapshots cover the stream up to a sequence and purge it; a reopen loads the snapshot and replays what came after', async () => {
    const nats = await startNatsServer();
    // Every write is past the threshold: a snapshot after each.
    const a = await store(nats.url, { snapshotMinBytes: 1 });
    for (let i = 1; i <= 5; i++) {
      a.putAgent(agent(`a${i}`, i));
      await a.flush();
    }
    const nc = await connect({ servers: nats.url });
    conns.push(nc);
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(STATE_STREAM);
    // Purged up to the last snapshot; the last sequence (the fence) stays.
    // Five batches after the empty first message (genesis).
    expect(info.state.last_seq).toBe(6);
    expect(info.state.messages).toBeLessThan(5);
    // SIGKILL-like: no close, so nothing more is written; a new reader sees all five.
    const b = await store(nats.url, { snapshotMinBytes: 1 << 30 });
    expect(b.listAgents().map((x) => x.name).sort()).toEqual(['a1', 'a2', 'a3', 'a4', 'a5']);
    b.putAgent(agent('a6', 6));
    await b.flush();
    const c = await store(nats.url);
    expect(c.listAgents().length).toBe(6);
    expect(c.getAgent('a6')?.appliedSeq).toBe(6);
    await Promise.all([b.close(), c.close()]);
  }, 30_000);
});
