/**
 * A replicated control plane: three `drover server --store jetstream`
 * replicas on a real 3-node nats-server cluster, three gRPC agents given
 * every replica's address. SIGKILL the leader with 50 runs in flight: a
 * standby takes over within 5 s, every run finishes, every side effect
 * happens once and every log line is served once. SIGSTOP the leader past
 * its lease: a standby takes over, and the old one, woken, writes nothing
 * and exits (the state stream's epochs show it).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { credsAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startNatsCluster, stopAllNatsServers, type NatsCluster } from '../../scripts/lib/nats-server.js';
import { DroverClient, isTerminal, type Run } from '../../sdk/index.js';
import { ENTRY, replicaDataDir, startAgent, startReplica, startServer, tempDir, waitFor, type AgentProc, type Proc } from '../helpers/cluster.js';
import { sample, scrape } from '../helpers/http-port.js';
import { lines } from './fault-helpers.js';

afterAll(stopAllNatsServers);

const RUNS = 50;
const ARGS = (urls: string) => ['--store', 'jetstream', '--nats', urls, '--heartbeat-interval-ms', '500', '--http', '127.0.0.1:0'];

type Replica = Proc & { address: string; dataDir: string };
let cluster: NatsCluster;
let replicas: Replica[] = [];
let clients: DroverClient[] = [];
let agents: AgentProc[] = [];
const conns: NatsConnection[] = [];

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all(conns.map((c) => c.close().catch(() => undefined)));
});

afterEach((ctx) => {
  if (ctx.task.result?.state !== 'fail') return;
  for (const r of replicas) process.stderr.write(`\n--- replica ${r.address}:\n${r.output().slice(-5000)}\n`);
});

function client(opts: { address: string; token: string; ca: string }) {
  const c = new DroverClient(opts);
  clients.push(c);
  return c;
}

/** The replica whose output says it leads at an epoch above `after`. */
function leaderAbove(after: number): Replica | undefined {
  return replicas.find((r) => r.child.exitCode === null && Number(/leading \(epoch (\d+)/.exec(r.output())?.[1] ?? 0) > after);
}

function epochOf(r: Replica): number {
  return Number(/leading \(epoch (\d+)/.exec(r.output())?.[1] ?? 0);
}

/** Succeeded steps over all runs, as the leader says. */
function succeededSteps(runs: Run[]): number {
  return runs.reduce((n, r) => n + r.steps.filter((s) => s.status === 'succeeded').length, 0);
}

describe('fault - a replicated control plane loses its leader', () => {
  let token = '';
  let ca = '';
  let effects = '';
  let file = '';

  it(`fault - SIGKILL of the leader with ${RUNS} runs in flight: a standby leads within 5 s, every run finishes, each side effect and log line once`, async () => {
    const first = tempDir('drover-rep-0-');
    const conf = spawnSync(process.execPath, [ENTRY.server, 'nats-config', '--data-dir', first], { encoding: 'utf8' });
    expect(conf.status, conf.stderr).toBe(0);
    cluster = await startNatsCluster({ config: conf.stdout });
    const leader0 = await startServer({ dataDir: first, args: ARGS(cluster.urls) });
    replicas = [leader0 as Replica];
    for (let i = 1; i < 3; i++) replicas.push(await startReplica({ dataDir: replicaDataDir(first), args: ARGS(cluster.urls) }));
    for (const r of replicas.slice(1)) expect(r.output()).toContain('standby on');
    token = readFileSync(join(first, 'admin.token'), 'utf8').trim();
    ca = join(first, 'ca.pem');
    const all = replicas.map((r) => r.address).join(',');
    agents = ['r1', 'r2', 'r3'].map((n) => startAgent({ address: all, enrollToken: leader0.enrollToken }, n, { pool: 'rep' }));

    // A client of a standby: its calls reach the leader.
    const c = client({ address: replicas[2].address, token, ca });
    await waitFor(async () => (await c.fleet.list()).filter((a) => a.state === 'connected').length === 3, 30_000, () => 'agents to connect');

    const dir = tempDir('drover-rep-wf-');
    effects = join(dir, 'effects');
    file = join(dir, 'wf.json');
    const step = (id: string, needs: string[]) => ({
      id,
      needs,
      target: { labels: { pool: 'rep' } },
      env: { EFFECTS: effects },
      run: 'echo "$DROVER_RUN_ID $DROVER_STEP_ID" >> "$EFFECTS"; for i in 1 2 3; do echo "$DROVER_STEP_ID line $i"; sleep 0.3; done',
    });
    writeFileSync(file, JSON.stringify({ name: 'replicated', steps: [step('a', []), step('b', ['a']), step('c', ['b'])] }));
    const ids: string[] = [];
    for (let i = 0; i < RUNS; i++) ids.push((await c.runs.launch(file)).id);
    await waitFor(() => lines(effects).length >= RUNS / 2, 60_000, () => 'runs to be under way');

    const before = succeededSteps(await Promise.all(ids.map((id) => c.runs.get(id))));
    const oldEpoch = epochOf(replicas[0]);
    replicas[0].child.kill('SIGKILL');
    const killedAt = Date.now();
    await new Promise((r) => replicas[0].child.once('exit', r));
    const next = await waitFor(() => leaderAbove(oldEpoch), 15_000, () => 'a standby to take the lease');
    const leadingAt = Date.now();
    // The first event the new leader applied: a step it marks succeeded.
    const c2 = client({ address: next.address, token, ca });
    await waitFor(async () => succeededSteps(await Promise.all(ids.map((id) => c2.runs.get(id)))) > before, 30_000, () => 'the new leader to apply an event');
    const appliedAt = Date.now();
    process.stderr.write(`leader failover: lease taken ${leadingAt - killedAt} ms after the SIGKILL, first event applied after ${appliedAt - killedAt} ms\n`);
    expect(appliedAt - killedAt).toBeLessThan(5000);

    const runs = await waitFor(
      async () => {
        const got = await Promise.all(ids.map((id) => c.runs.get(id)));
        return got.every((r) => isTerminal(r.status)) && got;
      },
      120_000,
      () => 'every run to finish',
    );
    expect(runs.map((r) => r.status)).toEqual(ids.map(() => 'succeeded'));
    const effectLines = lines(effects);
    expect(effectLines).toHaveLength(RUNS * 3);
    expect(new Set(effectLines).size).toBe(RUNS * 3);
    for (const id of ids) {
      const got: string[] = [];
      for await (const l of c.logs(id)) got.push(`${l.stepId}: ${l.text}`);
      for (const s of ['a', 'b', 'c']) expect(got.filter((l) => l.startsWith(`${s}:`)), `${id} step ${s}`).toEqual([1, 2, 3].map((i) => `${s}: ${s} line ${i}`));
    }
  }, 240_000);

  it('fault - SIGSTOP of the leader past its lease: a standby leads, and the old leader, woken, writes nothing and exits', async () => {
    // The killed replica comes back as a standby.
    const back = await startReplica({ dataDir: replicas[0].dataDir, listen: replicas[0].address, args: ARGS(cluster.urls) });
    replicas[0] = back;
    expect(back.output()).toContain('standby on');
    const old = leaderAbove(0)!;
    const oldEpoch = epochOf(old);
    const c = client({ address: back.address, token, ca });
    const running = await c.runs.launch(file);
    await waitFor(() => lines(effects).some((l) => l.startsWith(running.id)), 20_000, () => 'the run to start');

    old.expectExit();
    old.child.kill('SIGSTOP');
    const next = await waitFor(() => leaderAbove(oldEpoch), 15_000, () => 'a standby to take the lease from the stopped leader');
    const newEpoch = epochOf(next);
    // Past its lease by a margin, then woken.
    await new Promise((r) => setTimeout(r, 1500));
    const exited = new Promise<number | null>((r) => old.child.once('exit', (code) => r(code)));
    old.child.kill('SIGCONT');
    expect(await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 10_000))])).toBe(75);
    expect(old.output()).toMatch(/no longer the leader/);

    expect((await c.runs.launch(file).then((h) => h.wait())).status).toBe('succeeded');
    expect((await running.wait()).status).toBe('succeeded');

    // The state stream: every message from the old epoch comes before the new leader's marker.
    const nc = await connect({ servers: cluster.urls.split(','), authenticator: credsAuthenticator(readFileSync(join(next.dataDir, 'nats-control-plane.creds'))) });
    conns.push(nc);
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info('DROVER_STATE');
    const epochs: number[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage('DROVER_STATE', { seq }).catch(() => null);
      if (m) epochs.push(Number(m.header.get('Drover-Epoch') || 0));
    }
    const firstNew = epochs.indexOf(newEpoch);
    expect(firstNew).toBeGreaterThanOrEqual(0);
    expect(epochs.slice(firstNew).filter((e) => e !== newEpoch)).toEqual([]);
    for (let i = 1; i < epochs.length; i++) expect(epochs[i]).toBeGreaterThanOrEqual(epochs[i - 1]);
  }, 180_000);

  it('fault - `drover server status` names the leader, its epoch and three replicas; the leader\'s /metrics say it leads at that epoch with the stream caught up', async () => {
    const gone = replicas.findIndex((r) => r.child.exitCode !== null);
    if (gone >= 0) replicas[gone] = await startReplica({ dataDir: replicas[gone].dataDir, listen: replicas[gone].address, args: ARGS(cluster.urls) });
    const leader = leaderAbove(0)!;
    const status = () => spawnSync(process.execPath, [ENTRY.cli, 'server', 'status', '--data-dir', replicas[0].dataDir, '--nats', cluster.urls, '-o', 'json'], { encoding: 'utf8' });
    type Status = { leader: { address: string; epoch: number } | null; replicas: { address: string; role: string }[]; store: { replicas: { current: boolean }[] } };
    const got = await waitFor(
      () => {
        const r = status();
        const s = r.status === 0 ? (JSON.parse(r.stdout) as Status) : undefined;
        return s && s.replicas.length === 3 && s.store.replicas.every((p) => p.current) && s;
      },
      20_000,
      () => `server status to list three replicas:\n${JSON.stringify(status())}`,
    );
    expect(got.leader).toMatchObject({ address: leader.address, epoch: epochOf(leader) });
    expect(got.replicas.map((r) => r.role).sort()).toEqual(['leader', 'standby', 'standby']);
    expect(got.replicas.map((r) => r.address).sort()).toEqual(replicas.map((r) => r.address).sort());
    expect(got.store.replicas).toHaveLength(2);
    const table = spawnSync(process.execPath, [ENTRY.cli, 'server', 'status', '--data-dir', replicas[0].dataDir, '--nats', cluster.urls], { encoding: 'utf8' });
    expect(table.status, table.stderr).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`^leader +${leader.address.replace(/\./g, '\\.')} +epoch ${epochOf(leader)}`, 'm'));
    expect(table.stdout).toMatch(/^REPLICA +ROLE +HTTP +UP +SEEN$/m);

    // A standby serves no HTTP: only the leader answers /metrics.
    const base = await waitFor(() => /dashboard on (\S+)/.exec(leader.output())?.[1], 10_000, () => 'the leader to serve HTTP');
    const m = await waitFor(async () => {
      const s = await scrape(base, token, ca);
      return sample(s, 'drover_store_replica_current', {}) !== undefined && s;
    }, 15_000, () => 'the store replication gauges');
    expect(sample(m, 'drover_leader')).toBe(1);
    expect(sample(m, 'drover_leader_epoch')).toBe(epochOf(leader));
    const lag = m.families.find((f) => f.name === 'drover_store_replica_lag')!.metrics;
    expect(lag).toHaveLength(2);
    for (const standby of replicas.filter((r) => r !== leader)) expect(standby.output()).not.toMatch(/dashboard on/);

    // Agents keep the highest leader epoch they accepted (and so refuse a deposed leader's messages): the last runs' Assigns came from this leader.
    const epochs = await waitFor(
      () => {
        // No file: an agent that was sent no control message yet.
        const got = agents.map((a) => Number(existsSync(join(a.stateDir, 'identity', 'control-counter')) ? readFileSync(join(a.stateDir, 'identity', 'control-counter'), 'utf8').split('\n')[1] : 0));
        return got.includes(epochOf(leader)) && got;
      },
      10_000,
      () => 'an agent to record the leader epoch',
    );
    for (const e of epochs) expect(e).toBeLessThanOrEqual(epochOf(leader));
  }, 60_000);
});
