/**
 * LeaderLease in this process against a real nats-server: one holder at a
 * time, epochs that only grow, a standby that takes over once the holder
 * stops renewing, and a holder whose clock ran past its lease stepping down.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { LeaderLease } from '../../control-plane/leadership/lease.js';
import { startNatsServer } from '../helpers/nats.js';

const conns: NatsConnection[] = [];
afterAll(async () => {
  await Promise.all(conns.map((c) => c.close().catch(() => undefined)));
});

async function lease(url: string, address: string, onLost?: (r: string) => void) {
  const nc = await connect({ servers: url });
  conns.push(nc);
  const l = new LeaderLease({ nc, replicas: 1, address, ttlMs: 1200, onLost });
  await l.open();
  return { l, nc };
}

describe('leader lease', () => {
  it('leader lease - one holder at a time; a standby takes over after the holder dies, with a larger epoch; a clean resign hands over at once', async () => {
    const nats = await startNatsServer();
    const a = await lease(nats.url, '127.0.0.1:1');
    const b = await lease(nats.url, '127.0.0.1:2');
    const epochA = await a.l.campaign();
    expect(epochA).toBeGreaterThan(0);
    expect(a.l.valid()).toBe(true);

    let bWon = 0;
    const seen: string[] = [];
    const bCampaign = b.l.campaign((leader) => seen.push(leader?.address ?? 'none')).then((e) => (bWon = e));
    // Held through several renewals: b never gets it.
    await new Promise((r) => setTimeout(r, 2500));
    expect(bWon).toBe(0);
    expect(a.l.valid()).toBe(true);
    expect(seen).toContain('127.0.0.1:1');
    expect((await b.l.read())?.epoch).toBe(epochA);
    const replicas = await b.l.replicas();
    expect(replicas.map((r) => [r.address, r.role])).toEqual([
      ['127.0.0.1:1', 'leader'],
      ['127.0.0.1:2', 'standby'],
    ]);

    // a's process dies: its connection goes, nothing renews.
    const killedAt = Date.now();
    await a.nc.close();
    await bCampaign;
    const took = Date.now() - killedAt;
    expect(bWon).toBeGreaterThan(epochA);
    expect(took).toBeLessThan(1200 + 1500);
    expect(b.l.valid()).toBe(true);

    // A clean resign: the next candidate need not wait out the lease.
    const c = await lease(nats.url, '127.0.0.1:3');
    const cCampaign = c.l.campaign();
    await new Promise((r) => setTimeout(r, 300));
    const resignedAt = Date.now();
    await b.l.resign();
    const epochC = await cCampaign;
    expect(epochC).toBeGreaterThan(bWon);
    expect(Date.now() - resignedAt).toBeLessThan(800);
    await c.l.resign();
  });

  it('leader lease - a holder whose renewals stop past the lease (a paused process) loses it and says so once; the key moved on, so it cannot renew', async () => {
    const nats = await startNatsServer();
    const lost: string[] = [];
    const a = await lease(nats.url, '127.0.0.1:1', (r) => lost.push(r));
    await a.l.campaign();
    // Block the event loop past the lease, as SIGSTOP or a long GC would.
    const until = Date.now() + 1600;
    while (Date.now() < until) {
      /* busy */
    }
    expect(a.l.valid()).toBe(false);
    const b = await lease(nats.url, '127.0.0.1:2');
    await b.l.campaign();
    await new Promise((r) => setTimeout(r, 600));
    expect(lost).toHaveLength(1);
    expect(lost[0]).toMatch(/ran out|another replica/);
    expect(a.l.valid()).toBe(false);
    expect((await b.l.read())?.address).toBe('127.0.0.1:2');
    await b.l.resign();
  });
});
