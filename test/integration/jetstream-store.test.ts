/**
 * `drover server --store jetstream` on a real 3-node nats-server cluster
 * (operator mode, the configuration `drover server nats-config` prints),
 * with a real gRPC agent: the state survives the control plane's local
 * state; one node down changes nothing but latency; two down refuse new
 * runs with UNAVAILABLE naming JetStream and lose nothing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startNatsCluster, stopAllNatsServers, type NatsCluster } from '../../scripts/lib/nats-server.js';
import { DroverClient, UnavailableError } from '../../sdk/index.js';
import { ENTRY, startAgent, startServer, tempDir, waitFor, workflowFile, type ServerProc } from '../helpers/cluster.js';

afterAll(stopAllNatsServers);

/** Files of the data dir the control plane needs whatever the store: keys, certificates, tokens, credentials, the audit log. */
const KEEP = /^(ca\.(pem|key)|server\.(pem|key)|control-signing\.key|secret\.key|admin\.token|audit\.log.*|nats-.*\.(nk|creds))$/;

let cluster: NatsCluster;
let server: ServerProc;
let client: DroverClient;
let dataDir: string;
const wf = tempDir('drover-js-wf-');
const quick = workflowFile(wf, 'quick.yaml', "name: js-quick\nsteps:\n  - { id: one, target: { labels: { pool: js } }, run: 'echo one' }\n  - { id: two, needs: [one], target: { labels: { pool: js } }, run: 'echo two' }\n");
const slow = workflowFile(wf, 'slow.yaml', "name: js-slow\nsteps:\n  - { id: nap, target: { labels: { pool: js } }, run: 'sleep 3; echo rested' }\n  - { id: after, needs: [nap], target: { labels: { pool: js } }, run: 'echo after' }\n");

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, rej) => setTimeout(() => rej(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms))]);
}

async function start(listen?: string) {
  server = await startServer({ dataDir, listen, args: ['--store', 'jetstream', '--nats', cluster.urls, '--heartbeat-interval-ms', '300'] });
  client?.close();
  client = new DroverClient(server.clientOptions);
}

async function runToEnd(file: string, ms = 60_000) {
  const handle = await client.runs.launch(file);
  return within(handle.wait(), ms, `run ${handle.id} to finish`);
}

beforeAll(async () => {
  dataDir = tempDir('drover-js-server-');
  const conf = spawnSync(process.execPath, [ENTRY.server, 'nats-config', '--data-dir', dataDir], { encoding: 'utf8' });
  expect(conf.status, conf.stderr).toBe(0);
  cluster = await startNatsCluster({ config: conf.stdout });
  await start();
  startAgent(server, 'js-a1', { pool: 'js' });
  await waitFor(async () => (await client.fleet.list()).some((a) => a.name === 'js-a1' && a.state === 'connected'), 20_000, () => `agent js-a1 to connect:\n${server.output().slice(-2000)}`);
}, 60_000);

afterAll(() => client?.close());

// A failure shows what the control plane and the NATS servers said.
afterEach((ctx) => {
  if (ctx.task.result?.state !== 'fail') return;
  process.stderr.write(`\n--- control plane:\n${server.output().slice(-6000)}\n`);
  for (const n of cluster.nodes) process.stderr.write(`\n--- nats ${n.name}:\n${n.output().slice(-3000)}\n`);
});

describe('jetstream store - the state lives in a replicated stream', () => {
  it('jetstream store - after a SIGKILL and the loss of its local state files, the control plane finds its registry, runs and tokens in JetStream', async () => {
    await client.workflows.apply(quick);
    const first = await runToEnd(quick);
    expect(first.status).toBe('succeeded');
    const { info: token } = await client.access.createToken('viewer', { description: 'survives the data dir' });
    expect(existsSync(join(dataDir, 'state.json'))).toBe(false);

    await server.stop('SIGKILL');
    const dropped = readdirSync(dataDir).filter((f) => !KEEP.test(f));
    for (const f of dropped) rmSync(join(dataDir, f), { recursive: true, force: true });
    expect(dropped).toContain('logs');
    await start(server.address);

    expect((await client.workflows.list()).map((w) => w.name)).toContain('js-quick');
    const again = await client.runs.get(first.id);
    expect(again.status).toBe('succeeded');
    expect(again.steps.map((s) => [s.id, s.status])).toEqual([
      ['one', 'succeeded'],
      ['two', 'succeeded'],
    ]);
    expect((await client.access.listTokens()).map((t) => t.id)).toContain(token.id);
    // The agent reconnects to the restarted control plane (same address) and takes work again.
    await waitFor(async () => (await client.fleet.get('js-a1')).state === 'connected', 20_000, () => 'js-a1 to reconnect');
    expect((await runToEnd(quick)).status).toBe('succeeded');
  }, 120_000);

  it('jetstream store - one NATS node SIGKILLed during runs: the runs finish and new ones are taken', async () => {
    const running = await client.runs.launch(slow);
    await waitFor(async () => (await client.runs.get(running.id)).steps.find((s) => s.id === 'nap')?.status === 'running', 15_000, () => 'the nap step to start');
    // The stream's leader: its replicas elect another one meanwhile, the hardest single node to lose.
    const leader = await cluster.streamLeader('DROVER_STATE');
    expect(leader, 'a leader of DROVER_STATE named by /jsz').toBeDefined();
    await leader!.kill();
    expect((await within(running.wait(), 60_000, 'the slow run with one node down')).status).toBe('succeeded');
    expect((await runToEnd(quick)).status).toBe('succeeded');
    expect(server.output()).not.toMatch(/cannot write the state to NATS JetStream/);
    await leader!.start();
    await cluster.waitForJetStream();
  }, 120_000);

  it('jetstream store - two NATS nodes SIGKILLed: a launch is refused with UNAVAILABLE naming JetStream, nothing is lost, and runs are taken again once they return', async () => {
    const before = (await client.runs.list()).map((r) => r.id);
    const running = await client.runs.launch(slow);
    await waitFor(async () => (await client.runs.get(running.id)).steps.find((s) => s.id === 'nap')?.status === 'running', 15_000, () => 'the nap step to start');
    await Promise.all([cluster.nodes[1].kill(), cluster.nodes[2].kill()]);

    // The agent's heartbeats and the running step's events are writes: the store gives up on one after
    // its ride-through (15 s, longer than a stream leader election) and turns unhealthy.
    await waitFor(() => server.output().includes('cannot write the state to NATS JetStream (stream DROVER_STATE)'), 45_000, () => `the control plane to notice:\n${server.output().slice(-3000)}`);
    const refused = await client.runs.launch(quick).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(UnavailableError);
    expect((refused as UnavailableError).message).toMatch(/^the control plane cannot write its state to NATS JetStream \(stream DROVER_STATE\) \([A-Z0-9_]+: .+\); no run was started$/);

    await Promise.all([cluster.nodes[1].start(), cluster.nodes[2].start()]);
    await cluster.waitForJetStream();
    const done = await within(running.wait(), 90_000, 'the run that was going when quorum was lost');
    expect(done.status).toBe('succeeded');
    const next = await waitFor(
      () => client.runs.launch(quick).then((h) => h, (e: unknown) => (e instanceof UnavailableError ? undefined : Promise.reject(e))),
      60_000,
      () => `a launch to be taken again:\n${server.output().slice(-2000)}`,
    );
    expect((await within(next.wait(), 60_000, 'a run after the nodes returned')).status).toBe('succeeded');
    const ids = (await client.runs.list()).map((r) => r.id);
    expect(ids.sort()).toEqual([...before, running.id, next.id].sort());

    // And all of it is durable: a restart from JetStream alone sees the same runs.
    await server.stop('SIGKILL');
    await start(server.address);
    expect((await client.runs.list()).map((r) => r.id).sort()).toEqual(ids.sort());
    expect((await client.runs.get(running.id)).status).toBe('succeeded');
  }, 240_000);
});
