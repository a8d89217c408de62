/**
 * The conformance kit against the project's own control plane: `drover
 * conformance server` drives a real control plane as a scripted agent and
 * every rule it checks passes (CI runs it with the integration suite).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, startServer, type ServerProc } from '../helpers/cluster.js';

describe('conformance kit - server', () => {
  let server: ServerProc;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server?.stop());

  it('conformance kit - drover conformance server passes every rule against drover server, row by row, exit 0', async () => {
    const res = await cli(['conformance', 'server', server.address], server.env, 120_000);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const rows = res.stdout.split('\n').slice(1).filter((l) => /^(pass|FAIL) /.test(l));
    expect(rows.map((r) => r.split(/\s+/)[1])).toEqual([
      'hello-first', 'identity-name', 'welcome', 'heartbeat', 'control-signed', 'ack-durable', 'log-lines',
      'runfinished', 'seq-duplicate', 'seq-gap', 'event-order', 'attempt-number', 'attempt-id', 'identity-newest',
    ]);
    expect(rows.every((r) => r.startsWith('pass '))).toBe(true);
    expect(res.stdout).toMatch(/\nall 14 checks passed\n$/);
  });

  it('conformance kit - -o json gives the same checks as data; without a CA it refuses before it enrolls anything', async () => {
    const res = await cli(['conformance', 'server', server.address, '-o', 'json'], server.env, 120_000);
    expect(res.code).toBe(0);
    const results = JSON.parse(res.stdout) as { rule: string; ok: boolean; detail: string }[];
    expect(results).toHaveLength(14);
    expect(results.filter((r) => !r.ok)).toEqual([]);
    const noCa = await cli(['conformance', 'server', server.address], { ...server.env, DROVER_CA: '' }, 30_000);
    expect(noCa.code).toBe(1);
    expect(noCa.stderr).toMatch(/drover conformance server needs the control plane's CA \(--ca or DROVER_CA\)/);
  });
});
