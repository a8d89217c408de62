/**
 * JetStreamStore's run logs and fleet samples against a real nats-server
 * (one node, replicas 1), the store in this process: a new data dir gets
 * every line once; a local cache ahead of the stream (a crash before the
 * ack) or behind it (a crash before the cursor write, a torn file) ends
 * with every line once; a pruned run's subject is purged; lines the
 * retention dropped leave a notice of their size; samples come back; only
 * the control plane's NATS user may publish on the log and sample subjects.
 */
import { readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, credsAuthenticator, jwtAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { createUser } from '@nats-io/nkeys';
import { afterAll, describe, expect, it } from 'vitest';
import { JetStreamStore } from '../../control-plane/store/jetstream-store.js';
import { LOG_STREAM, logSubject, runOfSubject } from '../../control-plane/store/jetstream-logs.js';
import { SAMPLE_STREAM } from '../../control-plane/store/jetstream-samples.js';
import { FLEET_SAMPLE_RETENTION_MS, type LogRecord, type RunRecord } from '../../control-plane/store/store.js';
import { NatsAuth } from '../../control-plane/security/nats-auth.js';
import { tempDir, waitFor } from '../helpers/cluster.js';
import { startNatsServer, type NatsServer } from '../helpers/nats.js';

const conns: NatsConnection[] = [];
afterAll(async () => {
  await Promise.all(conns.map((c) => c.close().catch(() => undefined)));
});

async function natsConn(url: string) {
  const nc = await connect({ servers: url });
  conns.push(nc);
  return nc;
}

async function store(url: string, dataDir = tempDir('drover-jsl-'), opts: Partial<ConstructorParameters<typeof JetStreamStore>[0]> = {}) {
  const s = new JetStreamStore({ nc: await natsConn(url), dataDir, replicas: 1, publishTimeoutMs: 2000, ...opts });
  await s.open();
  return { s, dataDir };
}

function run(id: string, createdMs: number, status: RunRecord['status'] = 'running'): RunRecord {
  return { id, workflow: 'w', status, createdMs, startedMs: createdMs, endedMs: 0, params: {}, message: '', cancelRequested: false, deadlineExceeded: false, workflowVersion: 0, plan: {} as RunRecord['plan'], steps: {} };
}

/** `n` lines from agent a1, one agent message (seq) per `perChunk` lines, numbered from `from`. */
function lines(from: number, n: number, perChunk = 10): LogRecord[] {
  return Array.from({ length: n }, (_, i) => ({ t: 1000 + from + i, step: 's', attempt: 'r/s/1/a1', agent: 'a1', stream: 'stdout' as const, text: `line ${from + i}\n`, seq: 1 + Math.floor((from + i) / perChunk) }));
}

/** Every line of a run's log, page by page. */
function texts(s: JetStreamStore, runId: string) {
  const out: string[] = [];
  for (let from = 0; ; ) {
    const page = s.readLogPage(runId, { from, limit: 100_000 });
    out.push(...page.records.map((r) => r.text));
    if (page.next >= page.size) return out;
    from = page.next;
  }
}

const expected = (n: number) => Array.from({ length: n }, (_, i) => `line ${i}\n`);

describe('jetstream store - run logs in a stream', () => {
  let nats: NatsServer;

  it('jetstream logs - a control plane on a new data dir serves every line once and in order; the subject names the run', async () => {
    nats = await startNatsServer();
    const { s: a } = await store(nats.url);
    a.putRun(run('r-1', 1));
    // Many writes, some with more than max_payload of lines (split into several messages of the run's subject).
    for (let i = 0; i < 2000; i += 250) {
      a.appendLog('r-1', ...lines(i, 250));
      await a.flush();
    }
    a.appendLog('r-1', ...Array.from({ length: 40 }, (_, i) => ({ ...lines(2000 + i, 1)[0], text: `${'x'.repeat(60_000)} ${2000 + i}\n` })));
    await a.flush();
    const { s: b } = await store(nats.url);
    const got = texts(b, 'r-1');
    expect(got.length).toBe(2040);
    expect(got.slice(0, 2000)).toEqual(expected(2000));
    expect(got.slice(2000).map((t) => t.split(' ')[1])).toEqual(Array.from({ length: 40 }, (_, i) => `${2000 + i}\n`));
    expect(b.storedLogSeqs('r-1').get('a1')).toBe(a.storedLogSeqs('r-1').get('a1'));
    expect(runOfSubject(logSubject('r-1'))).toBe('r-1');
    expect(logSubject('odd id.*')).toMatch(/^drover\.v1\.logs\.=[A-Za-z0-9_-]+$/);
    expect(runOfSubject(logSubject('odd id.*'))).toBe('odd id.*');
    await Promise.all([a.close(), b.close()]);
  }, 60_000);

  it('jetstream logs - a crash between the local append and the stream ack: the lines the stream never took are cut from the cache, and the agent\'s resend stores them once', async () => {
    const { s: a, dataDir } = await store(nats.url, undefined, { coalesceMs: 600_000 });
    a.putRun(run('r-2', 2));
    a.appendLog('r-2', ...lines(0, 100));
    await a.flush();
    // Written to the local file at once, never published: no write runs before the "crash".
    a.appendLog('r-2', ...lines(100, 50));
    expect(readFileSync(join(dataDir, 'logs', 'r-2.ndjson'), 'utf8').split('\n').length - 1).toBe(150);

    // A restart on the same data dir (no close: a SIGKILL).
    const { s: a2 } = await store(nats.url, dataDir);
    expect(texts(a2, 'r-2')).toEqual(expected(100));
    expect(a2.storedLogSeqs('r-2').get('a1')).toBe(10);
    // The agent never had its messages 11..15 acknowledged: it sends them again.
    a2.appendLog('r-2', ...lines(100, 50));
    await a2.flush();
    expect(texts(a2, 'r-2')).toEqual(expected(150));
    const { s: fresh } = await store(nats.url);
    expect(texts(fresh, 'r-2')).toEqual(expected(150));
    await Promise.all([a2.close(), fresh.close()]);
  }, 60_000);

  it('jetstream logs - a cache behind the stream (an old cursor, a file cut short, a file lost) is filled without doubling a line', async () => {
    const { s: a } = await store(nats.url);
    a.putRun(run('r-3', 3));
    a.putRun(run('r-4', 4));
    for (let i = 0; i < 300; i += 30) {
      a.appendLog('r-3', ...lines(i, 30));
      a.appendLog('r-4', ...lines(i, 30));
      await a.flush();
    }
    const { s: b, dataDir } = await store(nats.url);
    expect(texts(b, 'r-3')).toEqual(expected(300));
    await b.close();

    // A crash after the records were appended but before the cursor was written: the cursor is older than the files.
    const cursorFile = join(dataDir, 'logs-cursor.json');
    const cursor = JSON.parse(readFileSync(cursorFile, 'utf8')) as { stream: string; seq: number; ends: Record<string, number> };
    writeFileSync(cursorFile, JSON.stringify({ ...cursor, seq: 0, ends: {} }));
    const { s: b2 } = await store(nats.url, dataDir);
    expect(texts(b2, 'r-3')).toEqual(expected(300));
    expect(texts(b2, 'r-4')).toEqual(expected(300));
    await b2.close();

    // r-3's file cut back mid-record (a torn write) with an old cursor; r-4's file lost with the cursor confirming it.
    const file = join(dataDir, 'logs', 'r-3.ndjson');
    const text = readFileSync(file, 'utf8');
    truncateSync(file, text.indexOf('line 137') + 3);
    writeFileSync(cursorFile, JSON.stringify({ ...cursor, seq: 2, ends: {} }));
    const { s: b3 } = await store(nats.url, dataDir);
    expect(texts(b3, 'r-3')).toEqual(expected(300));
    await b3.close();
    const confirmed = JSON.parse(readFileSync(cursorFile, 'utf8')) as { ends: Record<string, number> };
    expect(confirmed.ends['r-4']).toBeGreaterThan(0);
    readdirSync(join(dataDir, 'logs')).filter((f) => f.startsWith('r-4')).forEach((f) => truncateSync(join(dataDir, 'logs', f), 0));
    const { s: b4 } = await store(nats.url, dataDir);
    expect(texts(b4, 'r-4')).toEqual(expected(300));
    expect(texts(b4, 'r-3')).toEqual(expected(300));
    await Promise.all([a.close(), b4.close()]);
  }, 60_000);

  it('jetstream logs - retention: a pruned run\'s subject is purged, the stream has the limits asked for, and lines it dropped leave a notice of their size', async () => {
    // A server of its own: maxRuns counts every run of the state stream.
    const own = await startNatsServer();
    const limits = { logMaxAgeMs: 3_600_000, logMaxBytes: 64 * 1024 * 1024 };
    const { s: a } = await store(own.url, undefined, { maxRuns: 1, ...limits });
    const nc = await natsConn(own.url);
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(LOG_STREAM);
    expect(info.config.max_age).toBe(3_600_000 * 1e6);
    expect(info.config.max_bytes).toBe(64 * 1024 * 1024);
    expect(info.config.subjects).toEqual(['drover.v1.logs.>']);

    a.putRun(run('r-old', 10, 'succeeded'));
    a.appendLog('r-old', ...lines(0, 20));
    await a.flush();
    expect(await jsm.streams.getMessage(LOG_STREAM, { last_by_subj: logSubject('r-old') })).not.toBeNull();
    a.putRun(run('r-new', 11));
    for (let i = 0; i < 100; i += 10) {
      a.appendLog('r-new', ...lines(i, 10));
      await a.flush();
    }
    await waitFor(async () => !(await jsm.streams.getMessage(LOG_STREAM, { last_by_subj: logSubject('r-old') })), 10_000, () => 'r-old\'s subject to be purged');
    expect(a.getRun('r-old')).toBeUndefined();
    expect(a.readLogPage('r-old').records).toEqual([]);

    // The stream's limit dropped r-new's oldest messages (as max_age / max_bytes do): a new cache shows a notice in their place.
    await jsm.streams.purge(LOG_STREAM, { filter: logSubject('r-new'), keep: 4 });
    const { s: b } = await store(own.url, undefined, limits);
    const page = b.readLogPage('r-new', { limit: 1000 }).records;
    expect(page[0].text).toMatch(/^\[drover: \d+ bytes of this run's log were dropped by the log stream's retention limit before this control plane read them\] *\n$/);
    expect(page.slice(1).map((r) => r.text)).toEqual(expected(100).slice(60));
    // Offsets agree with the writer's: the next lines land at the same place.
    a.appendLog('r-new', ...lines(100, 10));
    await a.flush();
    const { s: c, dataDir } = await store(own.url, undefined, limits);
    expect(texts(c, 'r-new').slice(1)).toEqual(expected(110).slice(60));
    await c.close();
    const { s: c2 } = await store(own.url, dataDir, limits);
    expect(texts(c2, 'r-new').slice(1)).toEqual(expected(110).slice(60));
    await Promise.all([a.close(), b.close(), c2.close()]);
  }, 60_000);

  it('jetstream logs - a data dir from a version that kept logs only locally: its logs are kept and go to the stream', async () => {
    const { s: a, dataDir } = await store(nats.url);
    a.putRun(run('r-5', 5));
    a.appendLog('r-5', ...lines(0, 20));
    await a.flush();
    await a.close();
    // As that version left it: the lines in logs/, none in the stream, no cursor.
    const nc = await natsConn(nats.url);
    await (await jetstreamManager(nc)).streams.purge(LOG_STREAM, { filter: logSubject('r-5') });
    rmSync(join(dataDir, 'logs-cursor.json'));
    const { s: b } = await store(nats.url, dataDir);
    expect(texts(b, 'r-5')).toEqual(expected(20));
    b.putRun(run('r-5', 5));
    await b.flush();
    const { s: fresh } = await store(nats.url);
    expect(texts(fresh, 'r-5')).toEqual(expected(20));
    await Promise.all([b.close(), fresh.close()]);
  }, 30_000);

  it('jetstream samples - fleet samples come back on a new data dir, and the stream keeps them as long as the stats look back', async () => {
    const { s: a } = await store(nats.url);
    const now = Date.now();
    const samples = [3, 2, 1].map((k) => ({ t: now - k * 15_000, cpuPercent: k, memoryPercent: 10 * k, connected: 1, agents: 2 }));
    for (const x of samples) a.appendFleetSample(x);
    await a.close();
    const nc = await natsConn(nats.url);
    const info = await (await jetstreamManager(nc)).streams.info(SAMPLE_STREAM);
    expect(info.config.max_age).toBe(FLEET_SAMPLE_RETENTION_MS * 1e6);
    expect(info.state.messages).toBe(3);
    const { s: b, dataDir } = await store(nats.url);
    expect(b.fleetSamples(0, Infinity)).toEqual(samples);
    await b.close();
    // A cache that has them all already adds none twice.
    const { s: b2 } = await store(nats.url, dataDir);
    expect(b2.fleetSamples(0, Infinity)).toEqual(samples);
    await b2.close();
  }, 30_000);
});

describe('jetstream store - who may use the log and sample streams', () => {
  it('nats - agents and event publishers cannot publish on drover.v1.logs.> or drover.v1.samples.> nor use the JetStream API; the control plane can', async () => {
    const dataDir = tempDir('drover-jsl-auth-');
    const auth = NatsAuth.open(dataDir);
    const nats = await startNatsServer({ config: await auth.serverConfig() });
    const user = createUser();
    const agentJwt = await auth.agentJwt('edge-1', user.getPublicKey(), Date.now() + 3_600_000);
    const asAgent = await connect({ servers: nats.url, authenticator: jwtAuthenticator(agentJwt, user.getSeed()) });
    const asPublisher = await connect({ servers: nats.url, authenticator: credsAuthenticator(new TextEncoder().encode(await auth.publisherCreds('hr', ['alarms.>']))) });
    conns.push(asAgent, asPublisher);
    for (const [who, nc] of [['agent', asAgent], ['publisher', asPublisher]] as const) {
      const violations: string[] = [];
      void (async () => {
        for await (const st of nc.status()) if (st.type === 'error') violations.push(String((st as { error?: Error }).error?.message ?? ''));
      })();
      for (const subject of [logSubject('r-1'), 'drover.v1.samples.fleet', `$JS.API.STREAM.PURGE.${LOG_STREAM}`]) nc.publish(subject, 'x');
      await nc.flush().catch(() => undefined);
      await waitFor(() => violations.filter((v) => /permissions violation/i.test(v)).length >= 3, 10_000, () => `three publish violations for the ${who} (${violations.join('; ')})`);
      expect(violations.some((v) => v.includes('"drover.v1.logs.r-1"')), who).toBe(true);
      expect(violations.some((v) => v.includes('"drover.v1.samples.fleet"')), who).toBe(true);
      expect(violations.some((v) => v.includes(`"$JS.API.STREAM.PURGE.${LOG_STREAM}"`)), who).toBe(true);
    }
    // The control plane's own user keeps its logs and samples there.
    const cp = await connect({ servers: nats.url, authenticator: credsAuthenticator(new TextEncoder().encode(await auth.controlPlaneCreds())) });
    conns.push(cp);
    const s = new JetStreamStore({ nc: cp, dataDir: tempDir('drover-jsl-cp-'), replicas: 1, publishTimeoutMs: 2000 });
    await s.open();
    s.putRun(run('r-1', 1));
    s.appendLog('r-1', ...lines(0, 5));
    s.appendFleetSample({ t: Date.now(), cpuPercent: 1, memoryPercent: 1, connected: 0, agents: 0 });
    await s.flush();
    await s.close();
    const info = await (await jetstreamManager(cp)).streams.info(LOG_STREAM);
    expect(info.state.messages).toBe(1);
    expect((await (await jetstreamManager(cp)).streams.info(SAMPLE_STREAM)).state.messages).toBe(1);
  }, 30_000);
});
