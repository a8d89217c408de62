import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DroverClient } from '../../sdk/index.js';
import { cli, isAlive, startAgent, startServer, tempDir, waitFor, type AgentProc, type ServerProc } from '../helpers/cluster.js';

// Fast liveness: heartbeats every 200 ms, disconnected after 600 ms, lost after 1.5 s.
let server: ServerProc;
let client: DroverClient;
const dir = tempDir('drover-live-');

beforeAll(async () => {
  server = await startServer({ args: ['--heartbeat-interval-ms', '200', '--lost-after-ms', '1500'] });
  client = new DroverClient(server.clientOptions);
});
afterAll(() => client?.close());

let n = 0;
function workflow(doc: object): string {
  const file = join(dir, `wf-${++n}.json`);
  writeFileSync(file, JSON.stringify(doc));
  return file;
}

async function connected(...names: string[]) {
  await waitFor(async () => {
    const agents = await client.fleet.list();
    return names.every((nm) => agents.find((a) => a.name === nm)?.state === 'connected');
  }, 20_000, () => `${names.join(', ')} to connect`);
}


/** A step that records its process id and then sleeps. */
const sleeper = (pidFile: string) => `echo $$ > "${pidFile}"; exec sleep 60`;

describe('liveness - lost agents follow the workflow policy', () => {
  it('liveness - fail: a frozen agent is marked lost, its step fails, and its process is stopped when it returns', async () => {
    const victim: AgentProc = startAgent(server, 'frozen-1', { pool: 'fail' });
    await connected('frozen-1');
    const pid = join(dir, 'fail.pid');
    const handle = await client.runs.launch(
      workflow({ name: 'lost-fail', onAgentLost: 'fail', steps: [{ id: 'nap', target: { agent: 'frozen-1' }, run: sleeper(pid) }] }),
    );
    await waitFor(() => existsSync(pid), 10_000, () => 'the step to start');
    victim.child.kill('SIGSTOP');
    await waitFor(async () => (await client.fleet.get('frozen-1')).state === 'lost', 10_000, () => 'frozen-1 to be lost');
    const run = await handle.wait();
    expect(run.status).toBe('failed');
    expect(run.steps[0].message).toMatch(/agent frozen-1 was lost \(no contact for 1\.5s\)/);
    victim.child.kill('SIGCONT');
    const stepPid = Number(readFileSync(pid, 'utf8'));
    await waitFor(() => !isAlive(stepPid), 15_000, () => 'the returning agent to stop the step it no longer owns');
    await victim.stop();
  });

  it('liveness - retry: the step moves to another matching agent as a new attempt', async () => {
    const first: AgentProc = startAgent(server, 'mover-1', { pool: 'retry' });
    await connected('mover-1');
    const marks = join(dir, 'retry-marks');
    const handle = await client.runs.launch(
      workflow({
        name: 'lost-retry',
        onAgentLost: 'retry',
        steps: [{ id: 'work', target: { labels: { pool: 'retry' } }, env: { M: marks }, run: 'echo "$DROVER_AGENT" >> "$M"; [ "$DROVER_AGENT" = mover-2 ] || sleep 60' }],
      }),
    );
    await waitFor(() => existsSync(marks), 10_000, () => 'the step to start on mover-1');
    startAgent(server, 'mover-2', { pool: 'retry' });
    await connected('mover-2');
    first.child.kill('SIGSTOP');
    const run = await handle.wait();
    expect(run.status).toBe('succeeded');
    expect(run.steps[0].agent).toBe('mover-2');
    expect(readFileSync(marks, 'utf8').split('\n').filter(Boolean)).toEqual(['mover-1', 'mover-2']);
    first.child.kill('SIGCONT');
    await first.stop();
  });

  it('liveness - wait: the step finishes when its agent comes back', async () => {
    const victim: AgentProc = startAgent(server, 'napper-1', { pool: 'wait' });
    await connected('napper-1');
    const started = join(dir, 'wait-started');
    const handle = await client.runs.launch(
      workflow({
        name: 'lost-wait',
        onAgentLost: 'wait',
        steps: [{ id: 'slow', target: { agent: 'napper-1' }, env: { S: started }, run: 'touch "$S"; sleep 1; echo finished' }],
      }),
    );
    await waitFor(() => existsSync(started), 10_000, () => 'the step to start');
    victim.child.kill('SIGSTOP');
    await waitFor(async () => (await client.fleet.get('napper-1')).state === 'lost', 10_000, () => 'napper-1 to be lost');
    expect((await client.runs.get(handle.id)).status).toBe('running');
    victim.child.kill('SIGCONT');
    const run = await handle.wait();
    expect(run.status).toBe('succeeded');
    await victim.stop();
  });

  it('liveness - a step past its timeout on a silent agent is failed by the control plane', async () => {
    const slack = await startServer({ args: ['--heartbeat-interval-ms', '200', '--lost-after-ms', '60000', '--step-deadline-slack-ms', '1000'] });
    const c = new DroverClient(slack.clientOptions);
    const victim = startAgent(slack, 'silent-1', {});
    await waitFor(async () => (await c.fleet.list()).some((a) => a.state === 'connected'), 20_000, () => 'silent-1');
    const started = join(dir, 'silent-started');
    const handle = await c.runs.launch(
      workflow({ name: 'backstop', onAgentLost: 'wait', steps: [{ id: 't', target: { agent: 'silent-1' }, timeout: '500ms', env: { S: started }, run: 'touch "$S"; sleep 30' }] }),
    );
    await waitFor(() => existsSync(started), 10_000, () => 'the step to start');
    victim.child.kill('SIGSTOP');
    const run = await handle.wait();
    expect(run.status).toBe('failed');
    expect(run.steps[0].message).toMatch(/no result from agent silent-1 within the step's timeout \(0\.5s\) plus 1s; the agent stopped reporting/);
    victim.child.kill('SIGCONT');
    c.close();
  });
});

describe('liveness - drain', () => {
  it('liveness - a draining agent gets no new work; what it runs finishes', async () => {
    startAgent(server, 'drain-a', { pool: 'drain' });
    startAgent(server, 'drain-b', { pool: 'drain' });
    await connected('drain-a', 'drain-b');
    const running = await client.runs.launch(
      workflow({ name: 'before-drain', steps: [{ id: 's', target: { agent: 'drain-a' }, run: 'sleep 1' }] }),
    );
    const res = await cli(['agent', 'drain', 'drain-a', '--server', server.address], server.env);
    expect(res.stdout).toMatch(/agent drain-a is draining: no new work will be placed on it/);
    expect((await cli(['fleet', '--server', server.address], server.env)).stdout).toMatch(/drain-a \(draining\)/);
    const runs = await Promise.all(
      [1, 2, 3].map(async () => (await client.runs.launch(workflow({ name: 'after-drain', steps: [{ id: 's', target: { labels: { pool: 'drain' } }, run: 'true' }] }))).wait()),
    );
    expect(runs.map((r) => r.steps[0].agent)).toEqual(['drain-b', 'drain-b', 'drain-b']);
    expect((await running.wait()).status).toBe('succeeded');
    expect((await cli(['agent', 'drain', 'drain-a', '--undo', '--server', server.address], server.env)).stdout).toBe('agent drain-a takes new work again\n');
    expect((await client.fleet.get('drain-a')).draining).toBe(false);
  });
});
