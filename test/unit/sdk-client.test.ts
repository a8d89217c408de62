import * as grpc from '@grpc/grpc-js';
import { connect, createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { droverV1 } from '../../proto/index.js';
import { DroverClient, FileNotFoundError, resolveClientOptions, ServerUnreachableError } from '../../sdk/index.js';

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('sdk client', () => {
  it('client - address comes from the option, then DROVER_ADDR, then the default', () => {
    expect(resolveClientOptions({ address: 'a:1' }, { DROVER_ADDR: 'b:2' }).address).toBe('a:1');
    expect(resolveClientOptions({}, { DROVER_ADDR: 'b:2' }).address).toBe('b:2');
    expect(resolveClientOptions({}, {})).toEqual({ address: '127.0.0.1:7400', connectTimeoutMs: 3000, token: '', caPem: undefined, insecure: false });
  });

  it('client - the token and CA come from the options, then DROVER_TOKEN and DROVER_CA; a missing CA file is FILE_NOT_FOUND with the fix', () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    expect(resolveClientOptions({ token: 't1', ca: pem }, { DROVER_TOKEN: 't2' })).toMatchObject({ token: 't1', caPem: pem });
    expect(resolveClientOptions({}, { DROVER_TOKEN: ' t2\n' }).token).toBe('t2');
    let err: unknown;
    try {
      resolveClientOptions({}, { DROVER_CA: '/nonexistent/ca.pem' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FileNotFoundError);
    expect((err as FileNotFoundError).message).toMatch(/cannot read the CA certificate \/nonexistent\/ca.pem \(from DROVER_CA\)/);
    expect((err as FileNotFoundError).hint).toMatch(/<data dir>\/ca.pem/);
  });

  it('client - a refused connection fails fast with SERVER_UNREACHABLE naming the address', async () => {
    const address = `127.0.0.1:${await closedPort()}`;
    const client = new DroverClient({ address, connectTimeoutMs: 5000 });
    const started = Date.now();
    try {
      const err = await client.fleet.list().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ServerUnreachableError);
      expect((err as Error).message).toContain(`at ${address};`);
      expect(Date.now() - started).toBeLessThan(2000);
      const streamErr = await client.logs('r-1')[Symbol.asyncIterator]().next().catch((e: unknown) => e);
      expect(streamErr).toBeInstanceOf(ServerUnreachableError);
    } finally {
      client.close();
    }
  });

  it('client - a server that answers but drops a first connection is waited for, not reported unreachable', async () => {
    const server = new grpc.Server();
    server.addService(droverV1().FleetService.service, { ListAgents: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { agents: [] }) });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    // In front of it: the first connection is closed at once, later ones are passed through.
    let seen = 0;
    const open = new Set<Socket>();
    const proxy = createServer((sock) => {
      open.add(sock);
      if (++seen === 1) return void sock.destroy();
      const up = connect(port, '127.0.0.1');
      open.add(up);
      sock.pipe(up).pipe(sock);
      sock.on('error', () => up.destroy());
      up.on('error', () => sock.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const address = `127.0.0.1:${(proxy.address() as { port: number }).port}`;
    const client = new DroverClient({ address, insecure: true, connectTimeoutMs: 10_000 });
    try {
      expect(await client.fleet.list()).toEqual([]);
      expect(seen).toBeGreaterThanOrEqual(2);
    } finally {
      client.close();
      for (const s of open) s.destroy();
      proxy.close();
      server.forceShutdown();
    }
  });

  it('client - launching a missing file rejects with FILE_NOT_FOUND before any call', async () => {
    const client = new DroverClient({ address: '127.0.0.1:1' });
    try {
      const err = await client.runs.launch('/nonexistent/wf.yaml').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FileNotFoundError);
      expect((err as Error).message).toBe('workflow file not found: /nonexistent/wf.yaml');
    } finally {
      client.close();
    }
  });
});
