/**
 * The conformance kit against the project's own control plane and agent:
 * `drover conformance server` drives a real control plane as a scripted
 * agent, `drover conformance agent` runs a real agent against a scripted
 * control plane, and every rule they check passes (CI runs both with the
 * integration suite).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENTRY, cli, startServer, type ServerProc } from '../helpers/cluster.js';

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

describe('conformance kit - agent', () => {
  it('conformance kit - drover conformance agent passes every rule it checks against drover agent --insecure, and skips the signing rule', async () => {
    const res = await cli(['conformance', 'agent', '--', process.execPath, ENTRY.agent, '--insecure', '--server', '{addr}', '--name', 'kit', '--state-dir', '{dir}', '--grace-ms', '1000'], {}, 120_000);
    expect(res.code).toBe(0);
    const rows = res.stdout.split('\n').slice(1).filter((l) => /^(pass|FAIL|skip) /.test(l));
    expect(rows.map((r) => r.split(/\s+/).slice(0, 2).join(' '))).toEqual([
      'pass hello-first', 'pass heartbeat', 'pass attempt-id', 'pass seq-next', 'pass eval-retry', 'pass attempt-zero', 'pass eval-timeout',
      'pass welcome-resend', 'pass ack-durable', 'pass cancel-running', 'pass runfinished', 'skip control-signed',
    ]);
    expect(res.stdout).toMatch(/\nno check failed \(1 skipped\)\n$/);
  });

  it('conformance kit - with --signed, drover agent enrolls at the scripted control plane over TLS, acts only on signed control messages and refuses an unsigned Assign', async () => {
    const res = await cli(['conformance', 'agent', '--signed', '-o', 'json', '--', process.execPath, ENTRY.agent, '--server', '{addr}', '--token', '{token}', '--name', 'kit-signed', '--state-dir', '{dir}', '--grace-ms', '1000'], {}, 120_000);
    const results = JSON.parse(res.stdout) as { rule: string; ok: boolean; skipped?: boolean; detail: string }[];
    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(res.code).toBe(0);
    expect(results.map((r) => r.rule)).toEqual([
      'hello-first', 'heartbeat', 'attempt-id', 'seq-next', 'eval-retry', 'attempt-zero', 'eval-timeout', 'welcome-resend', 'ack-durable', 'cancel-running', 'runfinished', 'control-signed',
    ]);
    expect(results.some((r) => r.skipped)).toBe(false);
  });

  it('conformance kit - a command that is no agent fails every check, saying why, and exits 1', async () => {
    const res = await cli(['conformance', 'agent', '-o', 'json', '--', process.execPath, '-e', 'process.exit(3)'], {}, 60_000);
    expect(res.code).toBe(1);
    const results = JSON.parse(res.stdout) as { rule: string; ok: boolean; skipped?: boolean; detail: string }[];
    const checked = results.filter((r) => !r.skipped);
    expect(checked.length).toBe(11);
    expect(checked.every((r) => !r.ok && /the agent exited \(code 3\)/.test(r.detail))).toBe(true);
  });
});
