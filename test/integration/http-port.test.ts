/**
 * The control plane's HTTP port against a real `drover server` and agents:
 * HTTPS by default, /healthz, /metrics for a viewer token checked against
 * runs made here, the static files without traversal, and the flags' refusals.
 */
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DroverClient, type Run } from '../../sdk/index.js';
import { ENTRY, startAgent, startServer, tempDir, workflowFile, waitFor, type ServerProc } from '../helpers/cluster.js';
import { dashboardUrl, get, sample, scrape } from '../helpers/http-port.js';

const dir = tempDir('drover-http-');

const workflow = (name: string, text: string) => workflowFile(dir, `${name}.yaml`, text);

const OK = workflow(
  'metrics-ok',
  `name: metrics-ok
steps:
  - id: a
    target: { labels: { role: w } }
    run: echo a
  - id: b
    needs: [a]
    target: { labels: { role: w } }
    run: echo b
`,
);
const FAIL = workflow(
  'metrics-fail',
  `name: metrics-fail
steps:
  - id: bad
    target: { labels: { role: w } }
    run: exit 3
    retry: { attempts: 2, initial: 100ms }
`,
);

describe('http - the HTTP port', () => {
  let server: ServerProc;
  let admin: DroverClient;
  let base: string;
  let viewer: string;
  beforeAll(async () => {
    server = await startServer({ args: ['--http', '127.0.0.1:0', '--heartbeat-interval-ms', '500'] });
    base = await dashboardUrl(server);
    admin = new DroverClient(server.clientOptions);
    viewer = (await admin.access.createToken('viewer')).token;
    startAgent(server, 'w-1', { role: 'w' });
    startAgent(server, 'w-2', { role: 'w' });
    await waitFor(async () => (await admin.fleet.list()).filter((a) => a.state === 'connected' && a.heartbeat).length === 2, 30_000, () => 'two agents with a heartbeat');
  });
  afterAll(() => admin?.close());

  it('http - HTTPS by default: /healthz answers ok to a client that verifies the server with the CA, without a token', async () => {
    expect(base).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/$/);
    const res = await get(base, '/healthz', { ca: server.creds.caFile });
    expect(res.status).toBe(200);
    expect(res.body).toBe('ok\n');
    // Without the CA the certificate is not trusted.
    await expect(get(base, '/healthz')).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
  });

  it('http - /metrics refuses no token and a bad one with 401, audits the refusals, and serves a viewer token', async () => {
    const none = await get(base, '/metrics', { ca: server.creds.caFile });
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(none.body).toContain('UNAUTHENTICATED: this needs an API token with the viewer role; none was sent');
    const bad = await get(base, '/metrics', { ca: server.creds.caFile, token: 'drover-api.nope.nope' });
    expect(bad.status).toBe(401);
    expect(bad.body).toContain('not known to this control plane');
    const enroll = await get(base, '/metrics', { ca: server.creds.caFile, token: server.enrollToken });
    expect(enroll.status).toBe(401);
    expect(enroll.body).toContain('that is an enrollment token');
    const ok = await get(base, '/metrics', { ca: server.creds.caFile, token: viewer });
    expect(ok.status).toBe(200);
    expect(ok.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const refusals = await waitFor(async () => {
      const r = await admin.audit.list({ action: 'HTTP/metrics' });
      return r.length >= 3 && r;
    }, 10_000, () => 'three audited refusals');
    expect(refusals.map((r) => r.result)).toEqual(['UNAUTHENTICATED', 'UNAUTHENTICATED', 'UNAUTHENTICATED']);
    expect(refusals.every((r) => r.from === '127.0.0.1')).toBe(true);
  });

  it('http - /metrics counts the runs, steps and attempts made, with histogram counts, fleet gauges and process metrics', async () => {
    const runs: Run[] = [];
    for (const file of [OK, OK, FAIL]) runs.push(await (await admin.runs.launch(file)).wait());
    expect(runs.map((r) => r.status)).toEqual(['succeeded', 'succeeded', 'failed']);
    // Counted by hand from the runs' records.
    const steps = (wf: string, status: string) => runs.filter((r) => r.workflow === wf).flatMap((r) => r.steps).filter((s) => s.status === status).length;
    const attempts = (wf: string, status: string) =>
      runs.filter((r) => r.workflow === wf).flatMap((r) => r.steps.flatMap((s) => s.attempts)).filter((a) => a.status === status).length;
    expect(attempts('metrics-fail', 'failed')).toBe(2);

    const m = await scrape(base, viewer, server.creds.caFile);
    expect(sample(m, 'drover_runs_total', { workflow: 'metrics-ok', status: 'succeeded' })).toBe(2);
    expect(sample(m, 'drover_runs_total', { workflow: 'metrics-fail', status: 'failed' })).toBe(1);
    expect(sample(m, 'drover_runs_total', { workflow: 'metrics-ok', status: 'failed' })).toBeUndefined();
    expect(m.types.get('drover_run_duration_seconds')).toBe('histogram');
    expect(sample(m, 'drover_run_duration_seconds_count', { workflow: 'metrics-ok' })).toBe(2);
    expect(sample(m, 'drover_run_duration_seconds_count', { workflow: 'metrics-fail' })).toBe(1);
    expect(sample(m, 'drover_steps_total', { workflow: 'metrics-ok', status: 'succeeded' })).toBe(steps('metrics-ok', 'succeeded'));
    expect(steps('metrics-ok', 'succeeded')).toBe(4);
    expect(sample(m, 'drover_steps_total', { workflow: 'metrics-fail', status: 'failed' })).toBe(1);
    expect(sample(m, 'drover_step_attempts_total', { workflow: 'metrics-ok', status: 'succeeded' })).toBe(attempts('metrics-ok', 'succeeded'));
    expect(sample(m, 'drover_step_attempts_total', { workflow: 'metrics-fail', status: 'failed' })).toBe(2);
    expect(sample(m, 'drover_step_duration_seconds_count', { workflow: 'metrics-ok' })).toBe(4);
    // The duration histogram's sum is the runs' submit-to-end times.
    const byHand = runs.filter((r) => r.workflow === 'metrics-ok').reduce((t, r) => t + (r.endedAt - r.createdAt) / 1000, 0);
    expect(sample(m, 'drover_run_duration_seconds_sum', { workflow: 'metrics-ok' })).toBeCloseTo(byHand, 3);
    expect(sample(m, 'drover_run_duration_seconds_bucket', { workflow: 'metrics-ok', le: '+Inf' })).toBe(2);
    expect(sample(m, 'drover_runs_active', { workflow: 'metrics-ok' }) ?? 0).toBe(0);

    expect(sample(m, 'drover_agents', { state: 'connected', transport: 'grpc' })).toBe(2);
    expect(sample(m, 'drover_agent_connections', { transport: 'grpc' })).toBe(2);
    expect(sample(m, 'drover_agent_connections', { transport: 'nats' })).toBe(0);
    for (const agent of ['w-1', 'w-2']) {
      expect(sample(m, 'drover_agent_cpu_percent', { agent })).toBeGreaterThanOrEqual(0);
      expect(sample(m, 'drover_agent_memory_percent', { agent })).toBeGreaterThan(0);
    }
    expect(sample(m, 'drover_fleet_memory_percent')).toBeGreaterThan(0);
    expect(sample(m, 'drover_journal_replays_total')).toBe(0);
    expect(sample(m, 'drover_store_write_seconds_count')).toBeGreaterThan(0);
    expect(m.types.get('nodejs_eventloop_lag_seconds')).toBe('gauge');
    expect(sample(m, 'nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect(sample(m, 'process_resident_memory_bytes')).toBeGreaterThan(0);

    // The four metrics themselves, from the same StatsService as `drover stats`: 2 of the 3 runs succeeded.
    const stats = await admin.stats.get();
    const ok = stats.workflows.find((w) => w.workflow === 'metrics-ok')!;
    expect(sample(m, 'drover_stats_runs_ended', { workflow: 'metrics-ok' })).toBe(2);
    expect(sample(m, 'drover_stats_completion_ratio', { workflow: 'metrics-ok' })).toBe(1);
    expect(sample(m, 'drover_stats_completion_ratio', { workflow: 'metrics-fail' })).toBe(0);
    expect(sample(m, 'drover_stats_run_error_ratio', { workflow: 'metrics-fail' })).toBe(1);
    expect(sample(m, 'drover_stats_attempt_error_ratio', { workflow: 'metrics-ok' })).toBe(ok.attemptErrorRate);
    expect(sample(m, 'drover_stats_cycle_seconds', { workflow: 'metrics-ok', quantile: '1' })).toBeCloseTo(ok.cycleMaxMs / 1000, 6);
    expect(sample(m, 'drover_stats_cycle_seconds', { workflow: 'metrics-ok', quantile: '0.5' })).toBeCloseTo(ok.cycleP50Ms / 1000, 6);
    const overall = m.families.find((f) => f.name === 'drover_stats_completion_ratio')!.metrics.find((x) => !x.labels?.workflow);
    expect(Number(overall!.value)).toBeCloseTo(2 / 3, 6);
    expect(stats.overall.completionRate).toBeCloseTo(2 / 3, 6);
  });

  it('http - the dashboard path answers a page, and traversal out of the dashboard folder is refused in every spelling', async () => {
    const page = await get(base, '/', { ca: server.creds.caFile });
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.body).toMatch(/<html|not built/i);
    for (const path of [
      '/assets/../../state.json',
      '/../state.json',
      '/assets/..%2f..%2fstate.json',
      '/%2e%2e/%2e%2e/state.json',
      '/assets/%2e%2e%2f%2e%2e%2f%2e%2e%2fserver%2fstate.json',
      '/..%5c..%5cstate.json',
      '/assets/%252e%252e/state.json',
      '/.%00./state.json',
      '/admin.token',
      '/ca.pem',
    ]) {
      const res = await get(base, path, { ca: server.creds.caFile });
      expect(res.status, path).toBe(404);
      expect(res.body, path).toBe('not found\n');
    }
    expect((await get(base, '/nothing-here', { ca: server.creds.caFile })).status).toBe(404);
  });
});

describe('http - flags', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [ENTRY.server, '--listen', '127.0.0.1:0', '--data-dir', tempDir('drover-http-flags-'), ...args], { encoding: 'utf8', timeout: 30_000 });

  it('http - --http-plain is refused on a non-loopback address, and without --http', () => {
    const wide = run(['--http', '0.0.0.0:0', '--http-plain']);
    expect(wide.status).toBe(1);
    expect(wide.stderr).toContain('error: --http-plain is refused on 0.0.0.0:0: without TLS');
    const alone = run(['--http-plain']);
    expect(alone.status).toBe(1);
    expect(alone.stderr).toContain('error: --http-plain needs --http HOST:PORT');
    const notAddress = run(['--http', '7401']);
    expect(notAddress.stderr).toContain('error: --http "7401" is not host:port');
  });

  it('http - a port already in use is a clear error naming --http', async () => {
    const holder = createServer();
    const port = await new Promise<number>((resolve) => holder.listen(0, '127.0.0.1', () => resolve((holder.address() as { port: number }).port)));
    try {
      const res = run(['--http', `127.0.0.1:${port}`, '--http-plain']);
      expect(res.status).toBe(1);
      expect(res.stderr).toContain(`error: cannot listen on 127.0.0.1:${port} for --http: the address is already in use; choose another address with --http HOST:PORT`);
    } finally {
      holder.close();
    }
  });
});
