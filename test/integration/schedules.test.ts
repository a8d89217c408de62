/**
 * Cron schedules against real processes (docs/schedules.md): a control
 * plane and an agent on 127.0.0.1, a workflow with three 6-field crons
 * (every 2 s) applied with the CLI. Runs start and `drover schedules` lists
 * them; pause and resume from the CLI; a SIGKILL of the control plane, a
 * downtime, a restart: the missed fires follow each schedule's catchup, and
 * no fire from before the kill starts again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DroverClient, type Run } from '../../sdk/index.js';
import { cli, startAgent, startServer, tempDir, waitFor, workflowFile, type ServerProc } from '../helpers/cluster.js';

const dir = tempDir('drover-schedules-');
const WORKFLOW = `name: ticker
params:
  mode: { type: string }
triggers:
  - { name: tick-all, cron: "*/2 * * * * *", catchup: all, params: { mode: all } }
  - { name: tick-latest, cron: "*/2 * * * * *", catchup: latest, params: { mode: latest } }
  - { name: tick-none, cron: "*/2 * * * * *", catchup: none, params: { mode: none } }
steps:
  - id: s
    target: { labels: { pool: sched } }
    run: "true"
`;

let server: ServerProc;
let client: DroverClient;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const runsOf = async (schedule: string): Promise<Run[]> => (await client.runs.list({ workflow: 'ticker', limit: 1000 })).filter((r) => r.trigger === `schedule:${schedule}`);
/** Waits (at most 2.5 s) until the clock is `from` to `to` ms past an even second: fires are at even seconds. */
async function phase(from: number, to: number) {
  await waitFor(() => Date.now() % 2000 >= from && Date.now() % 2000 <= to, 2500, () => `the clock to be ${from}-${to} ms past an even second`);
}

beforeAll(async () => {
  server = await startServer();
  startAgent(server, 'sched-1', { pool: 'sched' });
  client = new DroverClient(server.clientOptions);
  await waitFor(async () => (await client.fleet.list()).some((a) => a.name === 'sched-1' && a.state === 'connected'), 15_000, () => 'agent sched-1 to connect');
  const applied = await cli(['workflow', 'apply', workflowFile(dir, 'ticker.yaml', WORKFLOW)], server.env);
  expect(applied.code, applied.stderr).toBe(0);
}, 40_000);

afterAll(() => client?.close());

describe('schedules - real control plane and agent', () => {
  it('schedules - a 6-field cron starts a run every 2 s with its params and trigger, and drover schedules lists them with their next fires', async () => {
    const runs = await waitFor(async () => {
      const r = await runsOf('tick-all');
      return r.length >= 2 && r;
    }, 15_000, () => 'two runs of tick-all');
    expect(runs[0]).toMatchObject({ workflow: 'ticker', workflowVersion: 1, params: { mode: 'all' }, trigger: 'schedule:tick-all' });
    // Two fires 2 s apart, not two runs of one fire.
    expect(Math.abs(runs[0].createdAt - runs[1].createdAt)).toBeGreaterThan(1_500);
    await waitFor(async () => (await client.runs.get(runs[1].id)).status === 'succeeded', 15_000, () => `run ${runs[1].id} to succeed`);

    const table = await cli(['schedules'], server.env);
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trimEnd().split('\n').map((l) => l.split(/\s{2,}/));
    expect(lines[0]).toEqual(['NAME', 'WORKFLOW', 'CRON', 'TIMEZONE', 'NEXT', 'LAST', 'LAST RUN', 'STATE']);
    expect(lines.slice(1).map((l) => l[0])).toEqual(['tick-all', 'tick-latest', 'tick-none']);
    for (const l of lines.slice(1)) {
      expect(l.slice(1, 4)).toEqual(['ticker@1', '*/2 * * * * *', 'UTC']);
      expect(l[4]).toMatch(/^(in [12]s|now)$/);
      expect(l[6]).toMatch(/^r-\d{6}-\d{6}-[0-9a-f]{8}$/);
      expect(l[7]).toBe('active');
    }

    const json = await cli(['schedules', '--workflow', 'ticker', '-o', 'json'], server.env);
    const [all] = JSON.parse(json.stdout) as { name: string; nextFireAt: string; lastFireAt: string; lastRunId: string; catchup: string; params: Record<string, string> }[];
    expect(all).toMatchObject({ name: 'tick-all', catchup: 'all', params: { mode: 'all' } });
    expect(Date.parse(all.nextFireAt) % 2000).toBe(0);
    expect(Date.parse(all.nextFireAt) - Date.parse(all.lastFireAt)).toBeGreaterThanOrEqual(2000);
    expect(await client.runs.get(all.lastRunId)).toMatchObject({ trigger: 'schedule:tick-all' });

    const status = await cli(['status', all.lastRunId], server.env);
    expect(status.stdout).toContain('Trigger:   schedule:tick-all');
    const unknown = await cli(['schedules', '--workflow', 'tickr'], server.env);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('no workflow named "tickr" in the registry');
  }, 40_000);

  it('schedules - drover schedule pause stops the fires, resume starts them again without catching up; an unknown name lists the schedules', async () => {
    const paused = await cli(['schedule', 'pause', 'tick-all'], server.env);
    expect(paused.code, paused.stderr).toBe(0);
    expect(paused.stdout).toBe('schedule tick-all (ticker, */2 * * * * * UTC) paused: no fires until drover schedule resume tick-all\n');
    // A fire already being started when the pause came may still land: count after it.
    await sleep(300);
    const before = (await runsOf('tick-all')).length;
    await sleep(5_000);
    expect((await runsOf('tick-all')).length).toBe(before);
    const listed = await cli(['schedules', '-o', 'json'], server.env);
    expect((JSON.parse(listed.stdout) as { name: string; paused: boolean; nextFireAt: string | null }[])[0]).toMatchObject({ name: 'tick-all', paused: true, nextFireAt: null });
    const table = await cli(['schedules'], server.env);
    expect(table.stdout.split('\n')[1]).toMatch(/^tick-all\s.*\s-\s.*\spaused$/);

    const resumed = await cli(['schedule', 'resume', 'tick-all'], server.env);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/^schedule tick-all \(ticker, \*\/2 \* \* \* \* \* UTC\) resumed: next fire \S+Z \((in [12]s|now)\)\n$/);
    // The 2-3 fires missed while paused are not caught up (catchup: all): one run per fire from here on.
    await waitFor(async () => (await runsOf('tick-all')).length === before + 1, 5_000, () => 'the first fire after resume');
    expect((await runsOf('tick-all')).length).toBe(before + 1);

    const wrong = await cli(['schedule', 'pause', 'tick-al'], server.env);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain('error: no schedule named "tick-al"; schedules: tick-all, tick-latest, tick-none');
    const audited = await client.audit.list({ action: 'TriggerService/' });
    expect(audited.map((r) => [r.action, r.target, r.result])).toEqual([
      ['TriggerService/PauseSchedule', 'tick-all', 'ok'],
      ['TriggerService/ResumeSchedule', 'tick-all', 'ok'],
      ['TriggerService/PauseSchedule', 'tick-al', 'SCHEDULE_NOT_FOUND'],
    ]);
  }, 40_000);

  it('schedules - SIGKILL, downtime, restart: missed fires follow catchup all, latest and none, and no fire from before the kill starts again', async () => {
    // Killed between two fires, restarted just after one: the fires missed are exactly the even seconds in between.
    await phase(900, 1100);
    const killed = Date.now();
    await server.stop('SIGKILL');
    await sleep(6_000);
    await phase(30, 250);
    const restarted = Date.now();
    const missed: string[] = [];
    for (let f = Math.ceil(killed / 2000) * 2000; f <= restarted; f += 2000) missed.push(new Date(f).toISOString());
    expect(missed.length).toBeGreaterThanOrEqual(3);
    client.close();
    server = await startServer({ dataDir: server.dataDir, listen: server.address });
    client = new DroverClient(server.clientOptions);

    // Catch-up runs in the background once the control plane listens: wait for the first on-time fire after it, which comes after them.
    let fires = await client.audit.list({ action: 'schedule.fire', since: new Date(restarted) });
    await waitFor(async () => {
      fires = await client.audit.list({ action: 'schedule.fire', since: new Date(restarted) });
      return fires.some((r) => Date.parse(r.detail.fire) > restarted);
    }, 10_000, () => `a fire after the restart; audited so far: ${JSON.stringify(fires.map((r) => [r.actor, r.detail.fire]))}`);
    const firesOf = (name: string) => fires.filter((r) => r.actor === `schedule:${name}`).map((r) => r.detail.fire).filter((f) => Date.parse(f) <= restarted);
    expect(firesOf('tick-all')).toEqual(missed);
    expect(firesOf('tick-latest')).toEqual([missed[missed.length - 1]]);
    expect(firesOf('tick-none')).toEqual([]);
    expect(fires.every((r) => r.result === 'ok' && Date.parse(r.detail.fire) > killed)).toBe(true);

    // What was dropped is said in the control plane's log (and as the schedule's last message until its next fire).
    const n = missed.length;
    expect(server.output()).toContain(`schedule tick-none: ${n} missed fires not started (catchup: none)`);
    expect(server.output()).toContain(`schedule tick-latest: ${n - 1} missed fire${n === 2 ? '' : 's'} not started (catchup: latest)`);
    expect(server.output()).not.toContain('schedule tick-all: ');
    // And they fire on time again (the agent reconnects to the restarted control plane and runs them).
    await waitFor(async () => (await runsOf('tick-none')).some((r) => r.createdAt > restarted && r.status === 'succeeded'), 20_000, () => 'a run of tick-none after the restart to succeed');
  }, 60_000);
});
