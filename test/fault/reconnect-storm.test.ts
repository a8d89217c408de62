/**
 * Fault 7: 500 agents (simulated in one process, each with its own TCP
 * connection, speaking the real protocol) reconnect at once after a control
 * plane restart. The control plane stays responsive and all re-register.
 */
import { describe, expect, it } from 'vitest';
import { GrpcLink } from '../../agent/link/grpc-link.js';
import { enrollSimAgents } from '../../scripts/sim/enroll.js';
import { SimFleet } from '../../scripts/sim/fleet.js';
import { DroverClient } from '../../sdk/index.js';
import { startServer, waitFor } from '../helpers/cluster.js';

const AGENTS = 500;

describe('fault - reconnect storm', () => {
  it(`fault - ${AGENTS} agents reconnecting at once all re-register and the API stays responsive`, async () => {
    const first = await startServer({ args: ['--log-level', 'warn'] });
    // Each simulated agent enrolls and connects with a certificate of its own, as real agents do.
    const ids = await enrollSimAgents(first.address, first.enrollToken, Array.from({ length: AGENTS }, (_, i) => `sim-${i}`));
    const fleet = new SimFleet({
      count: AGENTS,
      prefix: 'sim-',
      labels: { sim: 'yes' },
      controlKey: ids.controlKey,
      link: (name) => new GrpcLink(first.address, ids.tls.get(name), { 'grpc.use_local_subchannel_pool': 1, 'drover.sim': name }),
    });
    fleet.start();
    await waitFor(() => fleet.connected() === AGENTS, 60_000, () => `${AGENTS} agents to connect (now ${fleet.connected()})`);

    await first.stop('SIGKILL');
    const killedAt = Date.now();
    const second = await startServer({ dataDir: first.dataDir, listen: first.address, args: ['--log-level', 'warn'] });
    const client = new DroverClient(second.clientOptions);
    const latencies: number[] = [];
    let all = false;
    while (!all && Date.now() - killedAt < 60_000) {
      const t = Date.now();
      const agents = await client.fleet.list();
      latencies.push(Date.now() - t);
      all = agents.filter((a) => a.state === 'connected').length === AGENTS;
      await new Promise((r) => setTimeout(r, 100));
    }
    const recovered = Date.now() - killedAt;
    latencies.sort((a, b) => a - b);
    const p = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
    console.log(
      `fault 7: ${AGENTS} agents re-registered ${recovered} ms after the control plane was killed; ` +
        `fleet.list during the storm: ${latencies.length} calls, p50 ${p(0.5)} ms, p99 ${p(0.99)} ms, max ${latencies.at(-1)} ms`,
    );
    expect(all).toBe(true);
    expect(latencies.at(-1)).toBeLessThan(5000);
    fleet.stop();
    client.close();
  });
});
