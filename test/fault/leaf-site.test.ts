/**
 * An edge site on a NATS leaf node (docs/scale-out.md): the site's agents
 * connect to a nats-server at the site, which is a leaf node of the
 * central one the control plane uses; both run the configuration `drover
 * server nats-config` prints (--leaf-listen centrally, --leaf-remote with
 * credentials from `drover server nats-creds --leaf` at the site). The
 * site's uplink (a TCP proxy under the test's control) is pulled for
 * longer than the lost timeout while its agents run a plan with
 * `onAgentLost: wait`: they go on, their journals keep what the control
 * plane did not hear, and after the uplink heals the run finishes with
 * every step's side effect once and every log line once, in order.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DroverClient } from '../../sdk/index.js';
import { ENTRY, startNatsAgent, startServer, tempDir, waitFor } from '../helpers/cluster.js';
import { startNatsServer } from '../helpers/nats.js';
import { startProxy } from '../helpers/tcp-proxy.js';
import { lines, storedLogs } from './fault-helpers.js';

/** A free 127.0.0.1 port (for the leaf-node listener, which nats-server cannot pick for itself and report). */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

const config = (dataDir: string, ...args: string[]) => {
  const r = spawnSync(process.execPath, [ENTRY.server, 'nats-config', '--data-dir', dataDir, ...args], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
};

describe('fault - an edge site on a leaf node', () => {
  it('fault - the site uplink is pulled past the lost timeout: the site runs on, and after it heals nothing is lost or repeated', async () => {
    const dir = tempDir('drover-leaf-');
    const dataDir = tempDir('drover-leaf-server-');
    const leafPort = await freePort();
    const uplink = await startProxy(`127.0.0.1:${leafPort}`);
    // The central server advertises the uplink as its leaf address (as one behind a load balancer would): else the site learns its real address and reconnects around the test's uplink.
    const centralConf = config(dataDir, '--leaf-listen', `127.0.0.1:${leafPort}`, '--leaf-advertise', uplink.address);
    expect(centralConf).toContain(`leafnodes { listen: "127.0.0.1:${leafPort}", advertise: "${uplink.address}" }`);
    const central = await startNatsServer({ config: centralConf });
    const creds = spawnSync(process.execPath, [ENTRY.server, 'nats-creds', '--data-dir', dataDir, '--leaf', '--name', 'ber1'], { encoding: 'utf8' });
    expect(creds.status, creds.stderr).toBe(0);
    const credsFile = join(dir, 'ber1-leaf.creds');
    writeFileSync(credsFile, creds.stdout, { mode: 0o600 });
    const site = await startNatsServer({ config: config(dataDir, '--leaf-remote', `nats-leaf://${uplink.address}`, '--leaf-creds', credsFile) });
    await waitFor(() => /Leafnode connection created/i.test(site.output()), 15_000, () => `the site's leaf node to connect:\n${site.output()}`);

    const server = await startServer({ dataDir, args: ['--nats', central.url, '--heartbeat-interval-ms', '300', '--lost-after-ms', '2000'] });
    const client = new DroverClient(server.clientOptions);
    // Enrollment is over gRPC (once); the agents' link is the site's leaf node.
    startNatsAgent(server, site.url, 'ber1-a', { site: 'ber1' });
    startNatsAgent(server, site.url, 'ber1-b', { site: 'ber1' });
    await waitFor(async () => (await client.fleet.list()).filter((a) => a.state === 'connected').length === 2, 30_000, () => 'both site agents to connect through the leaf node');

    const effects = join(dir, 'effects');
    const file = join(dir, 'site.json');
    const tick = (n: number) => `echo "$DROVER_STEP_ID" >> "$E"; for i in $(seq 1 ${n}); do echo "tick $i"; sleep 0.1; done`;
    writeFileSync(
      file,
      JSON.stringify({
        name: 'site-maintenance',
        onAgentLost: 'wait',
        steps: [
          { id: 'drain', target: { agent: 'ber1-a' }, env: { E: effects }, run: tick(5) },
          { id: 'patch', needs: ['drain'], target: { agent: 'ber1-a' }, env: { E: effects }, run: tick(40) },
          { id: 'verify', needs: ['patch'], target: { agent: 'ber1-a' }, env: { E: effects }, run: tick(10) },
          { id: 'inventory', target: { agent: 'ber1-b' }, env: { E: effects }, run: tick(30) },
        ],
      }),
    );
    const handle = await client.runs.launch(file);
    await waitFor(() => lines(effects).includes('patch') && lines(effects).includes('inventory'), 20_000, () => 'patch and inventory to start');
    uplink.cut();
    const cutAt = Date.now();
    let states = '';
    await waitFor(
      async () => {
        const fleet = await client.fleet.list();
        states = fleet.map((a) => `${a.name} ${a.state}`).join(', ');
        return fleet.every((a) => a.state === 'lost');
      },
      15_000,
      () => `both site agents to be lost (${states}); uplink ${uplink.address}, leaf port ${leafPort}\nsite server:\n${site.output().split('\n').filter((l) => /Leaf/i.test(l)).join('\n')}\ncentral:\n${central.output().split('\n').filter((l) => /Leaf/i.test(l)).join('\n')}`,
    );
    // Each agent runs its slice of the plan on its own: ber1-a goes on from patch to verify without the control plane.
    await waitFor(() => lines(effects).length === 4, 30_000, () => `every step to run while the uplink is down (${lines(effects).join(',')})`);
    const during = await client.runs.get(handle.id);
    uplink.heal();
    const run = await handle.wait();
    const downMs = Date.now() - cutAt;
    const logs = await storedLogs(server.dataDir, run.id);
    console.log(`leaf site: uplink down ${downMs} ms (lost after 2000 ms); run ${during.status} meanwhile; ${logs.length} log lines after it healed`);

    expect(during.status).toBe('running');
    expect(run.status).toBe('succeeded');
    expect(lines(effects).sort()).toEqual(['drain', 'inventory', 'patch', 'verify']);
    expect(lines(effects).filter((x) => x !== 'inventory')).toEqual(['drain', 'patch', 'verify']);
    for (const [step, n] of [['drain', 5], ['patch', 40], ['verify', 10], ['inventory', 30]] as const) {
      expect(logs.filter((l) => l.step === step).map((l) => l.text), step).toEqual(Array.from({ length: n }, (_, i) => `tick ${i + 1}\n`));
    }
    expect((await client.fleet.list()).map((a) => a.state)).toEqual(['connected', 'connected']);
    client.close();
    await uplink.close();
  });
});
