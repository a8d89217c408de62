/**
 * Fault 5: the control plane is paused (SIGSTOP) while an agent logs fast:
 * the agent's memory stays bounded, its journal absorbs the output, and every
 * line arrives after SIGCONT.
 * Fault 6: a torn agent journal tail and a truncated control-plane store are
 * detected, reported clearly, and what is intact is recovered.
 */
import { appendFileSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DroverClient } from '../../sdk/index.js';
import { startAgent, startServer, tempDir, waitFor } from '../helpers/cluster.js';
import { lines, storedLogs } from './fault-helpers.js';

const LINES = 20_000;

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

function dirBytes(dir: string): number {
  try {
    return readdirSync(dir).reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
  } catch {
    return 0;
  }
}

describe('fault - pressure and corruption', () => {
  it('fault - a paused control plane: bounded agent memory, the journal absorbs, everything arrives', async () => {
    const server = await startServer();
    const stateDir = tempDir('drover-chatty-');
    const agent = startAgent(server, 'chatty', {}, stateDir);
    const client = new DroverClient(server.clientOptions);
    await waitFor(async () => (await client.fleet.list()).some((a) => a.state === 'connected'), 20_000, () => 'agent');
    const dir = tempDir('drover-fault5-');
    const started = join(dir, 'started');
    const file = join(dir, 'wf.json');
    writeFileSync(
      file,
      JSON.stringify({
        name: 'chatty',
        steps: [{ id: 'flood', target: { agent: 'chatty' }, env: { S: started }, run: `touch "$S"; sleep 0.3; seq 1 ${LINES} | awk '{ printf "%s %s\\n", $1, sprintf("%0990d", 0) }'` }],
      }),
    );
    const handle = await client.runs.launch(file);
    await waitFor(() => lines(started).length === 0 && statSafe(started), 15_000, () => 'the step to start');
    const baseline = rssBytes(agent.child.pid!);
    server.child.kill('SIGSTOP');
    let peak = baseline;
    let journalPeak = 0;
    const until = Date.now() + 6000;
    while (Date.now() < until) {
      peak = Math.max(peak, rssBytes(agent.child.pid!));
      journalPeak = Math.max(journalPeak, dirBytes(join(stateDir, 'journal')));
      await new Promise((r) => setTimeout(r, 100));
    }
    server.child.kill('SIGCONT');
    const run = await handle.wait();
    const logs = await storedLogs(server.dataDir, run.id);
    console.log(
      `fault 5: ${LINES} lines of 1 KB logged while the control plane was stopped; agent RSS ${mb(baseline)} before, ${mb(peak)} peak; ` +
        `journal peaked at ${mb(journalPeak)} on disk; ${logs.length} lines stored after SIGCONT`,
    );
    expect(run.status).toBe('succeeded');
    expect(logs).toHaveLength(LINES);
    expect(logs.every((l, i) => l.text.startsWith(`${i + 1} `))).toBe(true);
    expect(journalPeak).toBeGreaterThan(8 * 1024 * 1024);
    expect(peak - baseline).toBeLessThan(64 * 1024 * 1024);
    client.close();
  });

  it('fault - a torn journal tail and a truncated store are detected, reported and recovered', async () => {
    const server = await startServer();
    const stateDir = tempDir('drover-torn-');
    let agent = startAgent(server, 'torn', {}, stateDir);
    let client = new DroverClient(server.clientOptions);
    await waitFor(async () => (await client.fleet.list()).some((a) => a.state === 'connected'), 20_000, () => 'agent');
    const dir = tempDir('drover-fault6-');
    const file = join(dir, 'wf.json');
    writeFileSync(
      file,
      JSON.stringify({
        name: 'torn',
        steps: [{ id: 'work', target: { agent: 'torn' }, retry: { attempts: 3, initial: '100ms' }, run: 'for i in $(seq 1 30); do echo "line $i"; sleep 0.05; done' }],
      }),
    );
    const first = await (await client.runs.launch(file)).wait();
    expect(first.status).toBe('succeeded');

    // Agent journal: pause acks, kill the agent mid-step, tear its journal's tail.
    const handle = await client.runs.launch(file);
    await waitFor(async () => (await client.runs.get(handle.id)).steps[0].status === 'running', 10_000, () => 'step to run');
    server.child.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 500));
    agent.child.kill('SIGKILL');
    await new Promise((r) => agent.child.once('exit', r));
    const segs = readdirSync(join(stateDir, 'journal')).sort();
    appendFileSync(join(stateDir, 'journal', segs[segs.length - 1]), Buffer.from([0x20, 0, 0, 0, 1, 2, 3]));
    server.child.kill('SIGCONT');
    agent = startAgent(server, 'torn', {}, stateDir);
    const second = await handle.wait();
    await waitFor(() => /torn or corrupt tail/.test(agent.output()), 10_000, () => 'the agent to report the torn journal');
    expect(second.status).toBe('succeeded');

    // Control-plane store: truncate state.json between runs.
    await server.stop();
    client.close();
    const state = join(server.dataDir, 'state.json');
    writeFileSync(state, readFileSync(state, 'utf8').slice(0, 100));
    const again = await startServer({ dataDir: server.dataDir, listen: server.address });
    client = new DroverClient(again.clientOptions);
    const runs = await client.runs.list();
    await waitFor(() => /was not valid JSON .* previous generation .* was loaded/.test(again.output()), 10_000, () => 'the store recovery message');
    console.log(
      `fault 6: agent journal tail torn -> reported and discarded, run ${second.status}; store truncated to 100 bytes -> recovered ${runs.length} run(s) from state.json.bak`,
    );
    expect(runs.map((r) => r.id)).toContain(first.id);
    client.close();
  });
});

function statSafe(file: string): boolean {
  try {
    statSync(file);
    return true;
  } catch {
    return false;
  }
}

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
