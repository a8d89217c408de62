/**
 * `drover stats` and `client.stats` against a real control plane and agent
 * that ran known workflows: the figures match the runs as the API reports
 * them, and they are the same after the server restarts on its data dir.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DroverClient, type Run, type Stats, type WorkflowStats } from '../../sdk/index.js';
import { cli, startAgent, startServer, tempDir, waitFor, type ServerProc } from '../helpers/cluster.js';

/** Samples every 200 ms, so even a run of a second spans a few. */
const SERVER_ARGS = ['--fleet-sample-interval-ms', '200', '--heartbeat-interval-ms', '500'];
const dir = tempDir('drover-stats-');
let server: ServerProc;
let client: DroverClient;
const runs: Run[] = [];

function workflow(name: string, body: string): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, `name: ${name}\nsteps:\n${body}`);
  return file;
}

beforeAll(async () => {
  server = await startServer({ args: SERVER_ARGS });
  startAgent(server, 'stats-1', { role: 'worker' });
  client = new DroverClient(server.clientOptions);
  await waitFor(async () => (await client.fleet.list()).some((a) => a.state === 'connected' && a.heartbeat), 20_000, () => 'the agent to connect and send a heartbeat');
  const ok = workflow('stats-ok', '  - id: work\n    target: { labels: { role: worker } }\n    run: sleep 1; echo done\n');
  const bad = workflow('stats-bad', '  - id: work\n    target: { labels: { role: worker } }\n    run: exit 3\n    retry: { attempts: 2, backoff: fixed, initial: 100ms }\n');
  const slow = workflow('stats-slow', '  - id: work\n    target: { labels: { role: worker } }\n    run: sleep 30\n');
  for (const file of [ok, ok, bad]) runs.push(await (await client.runs.launch(file)).wait());
  const cancelled = await client.runs.launch(slow);
  await waitFor(async () => (await client.runs.get(cancelled.id)).steps.some((s) => s.status === 'running'), 15_000, () => 'the slow step to start');
  await cancelled.cancel('stats test');
  runs.push(await cancelled.wait());
}, 120_000);

afterAll(() => client?.close());

/** What the metrics must be for these runs, from the runs as GetRun reports them. */
function expected(list: Run[]): Partial<WorkflowStats> {
  const cycles = list.map((r) => r.endedAt - r.createdAt).sort((a, b) => a - b);
  const attempts = list.flatMap((r) => r.steps.flatMap((s) => s.attempts));
  const failed = list.filter((r) => r.status === 'failed').length;
  return {
    runsEnded: list.length,
    runsSucceeded: list.filter((r) => r.status === 'succeeded').length,
    runsFailed: failed,
    runsCancelled: list.filter((r) => r.status === 'cancelled').length,
    runsActive: 0,
    completionRate: list.filter((r) => r.status === 'succeeded').length / list.length,
    runErrorRate: failed / list.length,
    cycleMaxMs: cycles[cycles.length - 1],
    cycleP50Ms: cycles[Math.ceil(cycles.length / 2) - 1],
    attempts: attempts.length,
    attemptsFailed: attempts.filter((a) => a.status === 'failed' || a.status === 'lost').length,
    peakRssBytes: Math.max(...list.flatMap((r) => r.steps.map((s) => s.peakRssBytes))),
  };
}

const withoutTrend = ({ trend: _t, ...w }: WorkflowStats) => w;

async function statsJson(): Promise<{ from: string; to: string; overall: WorkflowStats; workflows: WorkflowStats[] }> {
  const res = await cli(['stats', '--since', '1h', '-o', 'json', '--server', server.address], server.env);
  expect(res.stderr).toBe('');
  expect(res.code).toBe(0);
  return JSON.parse(res.stdout);
}

describe('stats - the four metrics from a real control plane', () => {
  it('stats - `drover stats -o json` matches the runs that were made, per workflow and overall', async () => {
    const detailed = await Promise.all(runs.map((r) => client.runs.get(r.id)));
    expect(detailed.map((r) => `${r.workflow}:${r.status}`)).toEqual(['stats-ok:succeeded', 'stats-ok:succeeded', 'stats-bad:failed', 'stats-slow:cancelled']);
    const doc = await statsJson();
    expect(Date.parse(doc.to) - Date.parse(doc.from)).toBe(3_600_000);
    expect(doc.workflows.map((w) => w.workflow)).toEqual(['stats-bad', 'stats-ok', 'stats-slow']);
    for (const w of doc.workflows) expect(w).toMatchObject(expected(detailed.filter((r) => r.workflow === w.workflow)));
    expect(doc.overall).toMatchObject({ workflow: '', ...expected(detailed) });
    // stats-bad: two attempts, both failed (exit 3, then its retry).
    expect(doc.workflows[0]).toMatchObject({ attempts: 2, attemptsFailed: 2, attemptErrorRate: 1 });
    // The ok runs took a second each with samples every 200 ms: the fleet's memory while they ran is known.
    const okRuns = doc.workflows[1];
    expect(okRuns.fleetMemoryPercent).toBeGreaterThan(0);
    expect(okRuns.fleetMemoryPercent).toBeLessThanOrEqual(100);
    expect(okRuns.cpuSeconds).toBeCloseTo(detailed.filter((r) => r.workflow === 'stats-ok').reduce((n, r) => n + r.steps.reduce((m, s) => m + s.cpuSeconds, 0), 0), 5);
    expect(doc.overall.trend).toHaveLength(24);
    expect(doc.overall.trend.reduce((n, b) => n + b.ended, 0)).toBe(4);
    expect((doc.overall.trend[0] as unknown as { start: string }).start).toBe(doc.from);
  });

  it('stats - the SDK returns the same figures as the CLI; a workflow filter narrows overall', async () => {
    const doc = await statsJson();
    const sdk: Stats = await client.stats.get({ since: '1h' });
    expect(withoutTrend(sdk.overall)).toEqual(withoutTrend(doc.overall));
    expect(sdk.workflows.map(withoutTrend)).toEqual(doc.workflows.map(withoutTrend));
    const only = await client.stats.get({ workflow: 'stats-ok', since: 3_600_000 });
    expect(only.workflows.map((w) => w.workflow)).toEqual(['stats-ok']);
    expect(withoutTrend(only.overall)).toEqual({ ...withoutTrend(only.workflows[0]), workflow: '' });
    await expect(client.stats.get({ since: 'yesterday' })).rejects.toMatchObject({ code: 'INVALID_INPUT', message: `since "yesterday" is not a window: give ms (a positive number) or a duration such as '24h', '30m' or '7d'` });
  });

  it('stats - the table has a row per workflow and an (all) row; a bad --since names the flag and an example', async () => {
    const table = await cli(['stats', '--server', server.address], server.env);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^window: the last 24h \(.*Z to .*Z\); trend: runs ended in 24 slices of 1h$/);
    expect(lines[1]).toMatch(/^WORKFLOW\s+ENDED\s+ACTIVE\s+COMPLETED\s+FAILED\s+CANCELLED\s+ATTEMPTS FAILED\s+CYCLE P50\s+P95\s+MAX\s+CPU\s+PEAK MEM\s+FLEET CPU \/ MEM\s+TREND$/);
    expect(lines.slice(2).map((l) => l.split(/\s+/)[0])).toEqual(['stats-bad', 'stats-ok', 'stats-slow', '(all)']);
    expect(lines[3]).toMatch(/^stats-ok\s+2\s+0\s+100\.0% \(2\/2\)\s+0\.0% \(0\/2\)\s+0\s+0\.0% \(0\/2\)\s+\d/);
    // Columns line up: each header starts where its values start.
    const at = lines[1].indexOf('COMPLETED');
    for (const l of lines.slice(2)) expect(l.slice(at)).toMatch(/^(\d|-)/);
    const bad = await cli(['stats', '--since', 'yesterday', '--server', server.address], server.env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("option '--since <duration>' argument 'yesterday' is invalid. expected a duration from 1s to 366d, such as 24h, 30m or 7d (drover stats --since 24h)");
    const yaml = await cli(['stats', '-o', 'yaml', '--server', server.address], server.env);
    expect(yaml.stdout).toMatch(/^from: "?\d{4}-\d\d-\d\dT/);
  });

  it('stats - the figures survive a restart of the server (SIGTERM, then a new start on the same data dir)', async () => {
    const before = await statsJson();
    expect(existsSync(join(server.dataDir, 'fleet-samples.ndjson'))).toBe(true);
    client.close();
    await server.stop('SIGTERM');
    server = await startServer({ dataDir: server.dataDir, args: SERVER_ARGS });
    client = new DroverClient(server.clientOptions);
    const after = await statsJson();
    expect(after.workflows.map(withoutTrend)).toEqual(before.workflows.map(withoutTrend));
    expect(withoutTrend(after.overall)).toEqual(withoutTrend(before.overall));
    expect(after.overall.fleetMemoryPercent).toBeGreaterThan(0);
  });
});
