/**
 * `drover dev` serves the dashboard: the banner prints its URL with the admin
 * token in the fragment, and that URL's feed accepts the token.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { ENTRY, tempDir, waitFor } from '../helpers/cluster.js';
import { FeedClient, get } from '../helpers/http-port.js';

/** A port whose next one is free too (drover dev takes both). */
async function freePortPair(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const next = await new Promise<boolean>((resolve) => {
      const s = createServer().once('error', () => resolve(false)).listen(port + 1, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (next && port < 65535) return port;
  }
}

describe('http - drover dev', () => {
  const dev = { child: undefined as ReturnType<typeof spawn> | undefined, out: '' };
  afterAll(async () => {
    if (!dev.child || dev.child.exitCode !== null) return;
    const exited = new Promise((r) => dev.child!.once('exit', r));
    dev.child.kill('SIGINT');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    dev.child.kill('SIGKILL');
  });

  it('http - drover dev prints the dashboard URL with the admin token in the fragment, and its feed accepts it', async () => {
    const port = await freePortPair();
    dev.child = spawn(process.execPath, [ENTRY.cli, 'dev', '--port', String(port), '--dir', tempDir('drover-dev-http-')], { stdio: ['ignore', 'pipe', 'pipe'] });
    dev.child.stdout!.on('data', (d: Buffer) => (dev.out += d.toString()));
    dev.child.stderr!.on('data', (d: Buffer) => (dev.out += d.toString()));
    const url = await waitFor(() => /^dashboard:\s+(\S+)$/m.exec(dev.out)?.[1], 60_000, () => `the banner:\n${dev.out}`);
    const parsed = new URL(url);
    expect(`${parsed.protocol}//${parsed.host}/`).toBe(`http://127.0.0.1:${port + 1}/`);
    const token = decodeURIComponent(parsed.hash.replace(/^#token=/, ''));
    expect(token).toMatch(/^drover-api\./);
    expect((await get(`http://127.0.0.1:${port + 1}/`, '/healthz')).body).toBe('ok\n');
    const feed = new FeedClient(`http://127.0.0.1:${port + 1}/`);
    try {
      await feed.send({ type: 'auth', token });
      expect(await feed.next((m) => m.type === 'hello', 'hello')).toMatchObject({ role: 'admin' });
      await feed.send({ type: 'subscribe', topic: 'fleet' });
      const fleet = await feed.next((m) => m.type === 'fleet', 'the fleet');
      expect((fleet.agents as { name: string }[]).map((a) => a.name)).toEqual(['apps-1', 'assets-1', 'dir-1']);
    } finally {
      feed.close();
    }
  }, 90_000);
});
