import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DroverClient } from '../../sdk/index.js';
import { cli, startAgent, startServer, tempDir, waitFor, type ServerProc, isAlive } from '../helpers/cluster.js';

let server: ServerProc;
let client: DroverClient;
const evidence = tempDir('drover-evidence-');

beforeAll(async () => {
  server = await startServer();
  startAgent(server, 'dir-1', { role: 'directory' });
  startAgent(server, 'assets-1', { role: 'assets' });
  client = new DroverClient(server.clientOptions);
  await waitFor(async () => (await client.fleet.list()).filter((a) => a.state === 'connected').length === 2, 20_000, () => 'two agents to connect');
});

function workflowFile(name: string, text: string): string {
  const file = join(evidence, name);
  writeFileSync(file, text);
  return file;
}

describe('foundation - a workflow across two real agents', () => {
  it('foundation - a 3-step workflow lands on both agents by label, leaves evidence, and streams logs in order', async () => {
    const file = workflowFile(
      'three.yaml',
      `name: three-step
params:
  dir: { type: string }
steps:
  - id: create
    target: { labels: { role: directory } }
    run: |
      for i in 1 2 3 4 5; do echo "create line $i"; done
      echo "created by $DROVER_AGENT" > "$DIR/create.txt"
      echo "uid=1001" >> "$DROVER_OUTPUT"
    env: { DIR: "\${{ params.dir }}" }
  - id: provision
    needs: [create]
    target: { labels: { role: assets } }
    run: |
      echo "provision for $UID_"
      echo "uid $UID_ on $DROVER_AGENT" > "$DIR/provision.txt"
    env: { DIR: "\${{ params.dir }}", UID_: "\${{ steps.create.outputs.uid }}" }
  - id: report
    needs: [provision]
    target: { labels: { role: directory } }
    run: echo done > "$DIR/report.txt"
    env: { DIR: "\${{ params.dir }}" }
`,
    );
    const handle = await client.runs.launch(file, { dir: evidence });
    const run = await handle.wait();
    expect(run.status).toBe('succeeded');
    expect(Object.fromEntries(run.steps.map((s) => [s.id, s.agent]))).toEqual({ create: 'dir-1', provision: 'assets-1', report: 'dir-1' });
    expect(readFileSync(join(evidence, 'create.txt'), 'utf8')).toBe('created by dir-1\n');
    expect(readFileSync(join(evidence, 'provision.txt'), 'utf8')).toBe('uid 1001 on assets-1\n');
    expect(existsSync(join(evidence, 'report.txt'))).toBe(true);
    const create = run.steps.find((s) => s.id === 'create')!;
    expect(create.outputs).toEqual({ uid: '1001' });
    expect(create.exitCode).toBe(0);
    expect(create.endedAt).toBeGreaterThanOrEqual(create.startedAt);

    const lines: string[] = [];
    for await (const l of client.logs(run.id, 'create')) lines.push(l.text);
    expect(lines).toEqual([1, 2, 3, 4, 5].map((i) => `create line ${i}`));
  });

  it('foundation - `drover fleet -o json` lists both agents with memory figures', async () => {
    await waitFor(async () => (await client.fleet.list()).every((a) => a.heartbeat && a.heartbeat.memoryTotalBytes > 0), 15_000, () => 'heartbeats');
    const res = await cli(['fleet', '-o', 'json', '--server', server.address], server.env);
    expect(res.code).toBe(0);
    const agents = JSON.parse(res.stdout) as { name: string; state: string; facts: { memoryBytes: number; cpuCount: number }; heartbeat: { memoryPercent: number } }[];
    expect(agents.map((a) => a.name).sort()).toEqual(['assets-1', 'dir-1']);
    for (const a of agents) {
      expect(a.state).toBe('connected');
      expect(a.facts.memoryBytes).toBeGreaterThan(0);
      expect(a.facts.cpuCount).toBeGreaterThan(0);
      expect(a.heartbeat.memoryPercent).toBeGreaterThan(0);
    }
  });

  it('foundation - a failing step fails the run and skips its dependents', async () => {
    const file = workflowFile(
      'fail.yaml',
      `name: failing
steps:
  - { id: ok, run: "true", target: { labels: { role: directory } } }
  - { id: boom, needs: [ok], run: "echo about to fail >&2; exit 7", target: { labels: { role: assets } } }
  - { id: after, needs: [boom], run: "touch should-not-exist", target: { labels: { role: directory } } }
  - { id: after2, needs: [after], run: "true", target: { labels: { role: assets } } }
`,
    );
    const run = await (await client.runs.launch(file)).wait();
    expect(run.status).toBe('failed');
    const byId = Object.fromEntries(run.steps.map((s) => [s.id, s]));
    expect(byId.boom).toMatchObject({ status: 'failed', exitCode: 7 });
    expect(byId.after.status).toBe('skipped');
    expect(byId.after2.status).toBe('skipped');
    expect(run.message).toMatch(/step boom failed: exited with code 7/);
  });

  it('foundation - cancel kills a running sleep and the run ends cancelled', async () => {
    const marker = join(evidence, 'sleep.pid');
    const file = workflowFile(
      'sleep.yaml',
      `name: sleeper
params: { marker: {} }
steps:
  - id: nap
    target: { labels: { role: assets } }
    run: sleep 300 & echo $! > "$MARKER"; wait
    env: { MARKER: "\${{ params.marker }}" }
`,
    );
    const handle = await client.runs.launch(file, { marker });
    const pid = await waitFor(() => existsSync(marker) && Number(readFileSync(marker, 'utf8')), 15_000, () => 'the sleep to start');
    const res = await cli(['cancel', handle.id, '--server', server.address], server.env);
    expect(res.code).toBe(0);
    const run = await handle.wait();
    expect(run.status).toBe('cancelled');
    expect(run.steps[0].status).toBe('cancelled');
    // The whole process group is gone, including the backgrounded sleep.
    await waitFor(() => !isAlive(pid), 10_000, () => `sleep (pid ${pid}) to be killed`);
  });
});

