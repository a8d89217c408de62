/**
 * `drover server --store jetstream` (one nats-server in operator mode,
 * --store-replicas 1) with a real gRPC agent: a control plane SIGKILLed in
 * the middle of a step printing thousands of lines, started again on a
 * data dir holding only its keys, serves every line of the run once and in
 * order, and `drover stats` still has its fleet samples.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer, stopAllNatsServers, type NatsServer } from '../../scripts/lib/nats-server.js';
import { DroverClient } from '../../sdk/index.js';
import { ENTRY, startAgent, startServer, tempDir, waitFor, workflowFile, type ServerProc } from '../helpers/cluster.js';

afterAll(stopAllNatsServers);

/** Files of the data dir the control plane needs whatever the store (as in jetstream-store.test.ts). */
const KEEP = /^(ca\.(pem|key)|server\.(pem|key)|control-signing\.key|secret\.key|admin\.token|audit\.log.*|nats-.*\.(nk|creds))$/;
const LINES = 3000;

let nats: NatsServer;
let server: ServerProc;
let client: DroverClient;
let dataDir: string;
const wf = tempDir('drover-jsl-wf-');
// 3000 numbered lines over about 3 s (a pause every 100), then one on stderr.
const chatty = workflowFile(wf, 'chatty.yaml', `name: js-chatty\nsteps:\n  - { id: talk, target: { labels: { pool: jsl } }, run: 'i=1; while [ $i -le ${LINES} ]; do echo "line $i"; [ $((i % 100)) -eq 0 ] && sleep 0.1; i=$((i+1)); done; echo done >&2' }\n`);

// A second-long run: the fleet samples taken while it ran are its stats' fleet figures.
const nap = workflowFile(wf, 'nap.yaml', "name: js-nap\nsteps:\n  - { id: nap, target: { labels: { pool: jsl } }, run: 'sleep 1.5' }\n");

async function start(sampleMs: number, listen?: string) {
  server = await startServer({ dataDir, listen, args: ['--store', 'jetstream', '--store-replicas', '1', '--nats', nats.url, '--heartbeat-interval-ms', '300', '--fleet-sample-interval-ms', String(sampleMs)] });
  client?.close();
  client = new DroverClient(server.clientOptions);
}

beforeAll(async () => {
  dataDir = tempDir('drover-jsl-server-');
  const conf = spawnSync(process.execPath, [ENTRY.server, 'nats-config', '--data-dir', dataDir], { encoding: 'utf8' });
  expect(conf.status, conf.stderr).toBe(0);
  nats = await startNatsServer({ config: conf.stdout });
  await start(200);
  startAgent(server, 'jsl-a1', { pool: 'jsl' });
  await waitFor(async () => (await client.fleet.list()).some((a) => a.name === 'jsl-a1' && a.state === 'connected'), 20_000, () => `agent jsl-a1 to connect:\n${server.output().slice(-2000)}`);
}, 60_000);

afterAll(() => client?.close());

afterEach((ctx) => {
  if (ctx.task.result?.state !== 'fail') return;
  process.stderr.write(`\n--- control plane:\n${server.output().slice(-6000)}\n--- nats:\n${nats.output().slice(-3000)}\n`);
});

async function allLines(runId: string) {
  const out: { stream: string; text: string }[] = [];
  for await (const l of client.logs(runId)) out.push({ stream: l.stream, text: l.text });
  return out;
}

describe('jetstream store - run logs and fleet samples survive the control plane\'s host', () => {
  it('jetstream logs - SIGKILLed while a step prints 3000 lines, started again on a data dir with only its keys: every line once and in order, and the fleet samples are there', async () => {
    expect((await (await client.runs.launch(nap)).wait()).status).toBe('succeeded');
    const napStats = async () => (await client.stats.get({ since: '1h' })).workflows.find((w) => w.workflow === 'js-nap');
    const before = await napStats();
    expect(before?.fleetMemoryPercent).toBeGreaterThan(0);
    const handle = await client.runs.launch(chatty);
    // Some lines stored, the step still printing: the kill lands mid-stream.
    await waitFor(async () => (await allLines(handle.id)).length >= 500, 20_000, () => 'the first 500 lines');
    await server.stop('SIGKILL');
    const dropped = readdirSync(dataDir).filter((f) => !KEEP.test(f));
    for (const f of dropped) rmSync(join(dataDir, f), { recursive: true, force: true });
    expect(dropped).toEqual(expect.arrayContaining(['logs', 'fleet-samples.ndjson', 'logs-cursor.json']));

    // No new samples after the restart: what stats shows of the fleet came through the stream.
    await start(3_600_000, server.address);
    const after = await napStats();
    expect(after?.fleetMemoryPercent).toBe(before?.fleetMemoryPercent);
    expect(after?.fleetCpuPercent).toBe(before?.fleetCpuPercent);

    await waitFor(async () => (await client.runs.get(handle.id)).status === 'succeeded', 60_000, () => `the run to finish after the restart:\n${server.output().slice(-2000)}`);
    const got = await allLines(handle.id);
    expect(got.filter((l) => l.stream === 'stdout').map((l) => l.text)).toEqual(Array.from({ length: LINES }, (_, i) => `line ${i + 1}`));
    expect(got.filter((l) => l.stream === 'stderr').map((l) => l.text)).toEqual(['done']);

    // And once more from the stream alone: the same lines.
    await server.stop('SIGKILL');
    rmSync(join(dataDir, 'logs'), { recursive: true, force: true });
    rmSync(join(dataDir, 'logs-cursor.json'), { force: true });
    await start(3_600_000, server.address);
    expect(await allLines(handle.id)).toEqual(got);
  }, 120_000);
});
