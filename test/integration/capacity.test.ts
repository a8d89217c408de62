import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DroverClient, NoMatchingAgentError, type Run } from '../../sdk/index.js';
import { cli, startAgent, startServer, tempDir, waitFor, workflowFile, type AgentProc, type ServerProc } from '../helpers/cluster.js';

// Waiting for capacity (target.wait) with a real control plane, real agents and the CLI.
let server: ServerProc;
let client: DroverClient;
const dir = tempDir('drover-capacity-');
const agents: AgentProc[] = [];

beforeAll(async () => {
  server = await startServer();
  client = new DroverClient(server.clientOptions);
  agents.push(startAgent(server, 'dir-1', { role: 'directory' }));
  await connected('dir-1');
});
afterAll(() => client?.close());

async function connected(...names: string[]) {
  await waitFor(async () => {
    const fleet = await client.fleet.list();
    return names.every((n) => fleet.find((a) => a.name === n)?.state === 'connected');
  }, 20_000, () => `${names.join(', ')} to connect`);
}

const runId = (stdout: string) => /r-\d{6}-\d{6}-[0-9a-f]{8}/.exec(stdout)?.[0] ?? '';
const stepOf = (run: Run, id: string) => run.steps.find((s) => s.id === id)!;

/** create on the directory agent, then provision on role=<role> (waiting up to `wait`), which writes `mark`. */
function onboarding(name: string, role: string, wait: string, mark: string): string {
  return workflowFile(
    dir,
    `${name}.yaml`,
    `name: ${name}
steps:
  - { id: create, target: { labels: { role: directory } }, run: "true" }
  - id: provision
    needs: [create]
    target: { labels: { role: ${role} }, wait: ${wait} }
    run: echo "$DROVER_RUN_ID" > "$MARK"
    env: { MARK: "${mark}" }
`,
  );
}

describe('capacity - a step waits for an agent that matches (target.wait)', () => {
  it('capacity - drover plan shows the step as waiting-capable, run is accepted, status shows the reason, the run succeeds once an assets agent joins', async () => {
    const mark = join(dir, 'assets.mark');
    const file = onboarding('onboard-wait', 'assets', '2m', mark);

    const plan = await cli(['plan', file], server.env);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/\n {2}provision +run +role=assets, one agent, waits up to 2m when none is usable\n/);
    expect(plan.stdout).toContain('runs on:     no agent is available now; the run is accepted and the step waits up to 2m for one (target.wait)');
    expect(plan.stdout).toMatch(/\nWarnings:\n {2}\S+onboard-wait\.yaml:6:5: warning: no agent in the fleet matches role=assets now; the run is accepted and the step waits up to 2m for one \(target\.wait\) {2}\(at steps\[1\]\.target\)\n\n/);
    expect(plan.stdout).toContain('Plan hash: ');

    // Without wait, the same run is refused as before.
    const refusing = workflowFile(dir, 'no-wait.yaml', readFileSync(file, 'utf8').replace(', wait: 2m', '').replace('onboard-wait', 'onboard-nowait'));
    await expect(client.runs.launch(refusing)).rejects.toThrow(NoMatchingAgentError);

    const started = await cli(['run', file], server.env);
    expect(started.code, started.stderr).toBe(0);
    const id = runId(started.stdout);
    expect(id).not.toBe('');
    const waiting = /^waiting for an agent matching role=assets \(up to 2m, until \d\d:\d\d:\d\d UTC\)$/;
    const run = await waitFor(async () => {
      const r = await client.runs.get(id);
      return waiting.test(stepOf(r, 'provision').waiting) && r;
    }, 15_000, () => 'provision to wait for an assets agent');
    expect(run.status).toBe('running');
    expect(stepOf(run, 'provision')).toMatchObject({ status: 'pending', agent: '', blocked: true });
    const status = await cli(['status', id], server.env);
    expect(status.stdout).toMatch(/\nWaiting:\n {2}provision: waiting for an agent matching role=assets \(up to 2m, until \d\d:\d\d:\d\d UTC\)\n/);

    agents.push(startAgent(server, 'assets-1', { role: 'assets' }));
    const done = await waitFor(async () => {
      const r = await client.runs.get(id);
      return r.status !== 'running' && r;
    }, 20_000, () => 'the run to finish once assets-1 joined');
    expect(done.status).toBe('succeeded');
    expect(stepOf(done, 'provision')).toMatchObject({ status: 'succeeded', agent: 'assets-1' });
    expect(readFileSync(mark, 'utf8').trim()).toBe(id);
  });

  it('capacity - a short wait ends: the step fails with the message, drover run --follow exits 1', async () => {
    const mark = join(dir, 'never.mark');
    const file = onboarding('onboard-expire', 'nowhere', '2s', mark);
    const t0 = Date.now();
    const follow = await cli(['run', file, '--follow'], server.env, 30_000);
    expect(follow.code).toBe(1);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2000);
    const id = runId(follow.stdout + follow.stderr);
    const run = await client.runs.get(id);
    expect(run.status).toBe('failed');
    expect(stepOf(run, 'provision')).toMatchObject({ status: 'failed', message: 'no agent matching role=nowhere joined within 2s (target.wait)' });
    expect(run.message).toBe('step provision failed: no agent matching role=nowhere joined within 2s (target.wait)');
    expect(follow.stdout + follow.stderr).toContain('no agent matching role=nowhere joined within 2s (target.wait)');
    expect(existsSync(mark)).toBe(false);
  });

  it('capacity - every matching agent draining: the step waits, and runs when one is undrained from the CLI', async () => {
    agents.push(startAgent(server, 'gpu-1', { role: 'gpu' }));
    await connected('gpu-1');
    const drain = await cli(['agent', 'drain', 'gpu-1'], server.env);
    expect(drain.code, drain.stderr).toBe(0);
    const mark = join(dir, 'gpu.mark');
    const handle = await client.runs.launch(onboarding('gpu-wait', 'gpu', '1m', mark));
    await waitFor(async () => /^waiting for an agent matching role=gpu \(up to 1m, until /.test(stepOf(await client.runs.get(handle.id), 'provision').waiting), 15_000, () => 'provision to wait');
    // Draining still: nothing was sent to gpu-1.
    expect(existsSync(mark)).toBe(false);
    const undo = await cli(['agent', 'drain', 'gpu-1', '--undo'], server.env);
    expect(undo.code, undo.stderr).toBe(0);
    const run = await handle.wait();
    expect(run.status).toBe('succeeded');
    expect(stepOf(run, 'provision').agent).toBe('gpu-1');
  });
});

describe('capacity - a restart keeps the wait', () => {
  it('capacity - SIGKILL the control plane while a step waits: after the restart it waits with the same deadline, and runs when an agent joins', async () => {
    const own = await startServer();
    const ownClient = new DroverClient(own.clientOptions);
    try {
      const dir1 = startAgent(own, 'dir-r', { role: 'directory' });
      await waitFor(async () => (await ownClient.fleet.list()).some((a) => a.name === 'dir-r' && a.state === 'connected'), 20_000, () => 'dir-r to connect');
      const mark = join(dir, 'restart.mark');
      const handle = await ownClient.runs.launch(onboarding('restart-wait', 'late', '5m', mark));
      const before = await waitFor(async () => {
        const w = stepOf(await ownClient.runs.get(handle.id), 'provision').waiting;
        return /until \d\d:\d\d:\d\d UTC/.test(w) && w;
      }, 15_000, () => 'provision to wait');
      await own.stop('SIGKILL');
      ownClient.close();

      const again = await startServer({ dataDir: own.dataDir, listen: own.address });
      const againClient = new DroverClient(again.clientOptions);
      try {
        const run = await againClient.runs.get(handle.id);
        expect(run.status).toBe('running');
        expect(stepOf(run, 'provision').waiting).toBe(before);
        startAgent(again, 'late-1', { role: 'late' });
        const done = await waitFor(async () => {
          const r = await againClient.runs.get(handle.id);
          return r.status !== 'running' && r;
        }, 30_000, () => 'the run to finish after the restart');
        expect(done.status).toBe('succeeded');
        expect(stepOf(done, 'provision').agent).toBe('late-1');
        expect(readFileSync(mark, 'utf8').trim()).toBe(handle.id);
      } finally {
        againClient.close();
        await again.stop();
      }
      await dir1.stop();
    } finally {
      ownClient.close();
    }
  });
});
