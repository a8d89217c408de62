/**
 * The agent's state dir on a full disk (a small tmpfs, its blocks and inodes
 * filled), with output still to journal, a step's end to report and the next
 * step due: the `drover agent` process stays up, what it cannot journal waits
 * in memory unsent, the next step does not start (its attempt cannot be
 * recorded), and once space is back everything goes on by itself: each
 * step's work happens once, every line is stored once, in order.
 *
 * The agent is paused (SIGSTOP) while the step prints, so that it has
 * 200 KB to journal only after the disk is full: a tmpfs lets small appends
 * into a file's last page through, so nothing else makes the failure certain.
 *
 * Needs root (mount); skipped with a message otherwise, failed under CI=true.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { DroverClient } from '../../sdk/index.js';
import { isAlive, startAgentCommand, startServer, tempDir, waitFor } from '../helpers/cluster.js';
import { lines, mountTmpfs, storedLogs, whenMountable } from './fault-helpers.js';

const LINES = 4000;
const { problem, maybe } = whenMountable('agent disk-full fault test');

/** Fills every block and inode of the file system at `mnt`; returns what to remove to free it. */
function fill(mnt: string): string[] {
  const filler = join(mnt, 'filler');
  execFileSync('fallocate', ['-l', String(Number(statfsSync(mnt).bavail) * Number(statfsSync(mnt).bsize)), filler]);
  const inodes = join(mnt, 'inodes');
  mkdirSync(inodes);
  for (let i = 0; i < 100_000; i++) {
    try {
      writeFileSync(join(inodes, String(i)), '');
    } catch {
      break;
    }
  }
  return [filler, inodes];
}

describe('fault - the agent on a full disk', () => {
  maybe("fault - the agent's state dir fills up: the agent stays up, nothing runs twice or unrecorded, every line arrives once, it goes on by itself", async () => {
    if (problem) throw new Error(problem);
    const mnt = mountTmpfs('size=16m,nr_inodes=4000');
    const server = await startServer();
    const agent = startAgentCommand(server, 'full-disk', { pool: 'full' }, join(mnt, 'state'));
    const client = new DroverClient(server.clientOptions);
    await waitFor(async () => (await client.fleet.list()).some((a) => a.name === 'full-disk' && a.state === 'connected'), 20_000, () => agent.output());

    const dir = tempDir('drover-agent-full-wf-');
    const effects = join(dir, 'effects');
    const mark = (name: string) => join(dir, name);
    const wait = (name: string) => `while [ ! -f "${mark(name)}" ]; do sleep 0.05; done`;
    const file = join(dir, 'full.json');
    const steps = [
      {
        id: 'first',
        run: `echo "first START" >> "${effects}"; ${wait('print')}; i=1; while [ $i -le ${LINES} ]; do echo "first line $i of the output the agent journals after the disk filled"; i=$((i+1)); done; echo "first PRINTED" >> "${effects}"; ${wait('go')}; echo "first END" >> "${effects}"`,
      },
      { id: 'second', needs: ['first'], run: `echo "second START" >> "${effects}"; echo "second line 1"; echo "second END" >> "${effects}"` },
    ].map((s) => ({ ...s, target: { agent: 'full-disk' } }));
    writeFileSync(file, JSON.stringify({ name: 'full-disk', steps }));
    const handle = await client.runs.launch(file);
    await waitFor(() => lines(effects).includes('first START') || undefined, 20_000, () => 'the first step to start');

    // The step prints while the agent is paused; then the disk fills; then the step ends.
    agent.child.kill('SIGSTOP');
    writeFileSync(mark('print'), '');
    await waitFor(() => lines(effects).includes('first PRINTED') || undefined, 20_000, () => 'the first step to print');
    const fillers = fill(mnt);
    writeFileSync(mark('go'), '');
    await waitFor(() => lines(effects).includes('first END') || undefined, 20_000, () => 'the first step to end');
    agent.child.kill('SIGCONT');

    await waitFor(() => agent.output().includes('cannot write the journal') || undefined, 15_000, () => `the agent to notice the full disk:\n${agent.output().slice(-3000)}`);
    await waitFor(() => agent.output().includes('cannot start the step now') || undefined, 15_000, () => `the second step to wait:\n${agent.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 1500));
    expect(isAlive(agent.child.pid!)).toBe(true);
    // The second step has not run: its start could not be recorded.
    expect(lines(effects)).toEqual(['first START', 'first PRINTED', 'first END']);
    const fullAt = Date.now();

    for (const f of fillers) rmSync(f, { recursive: true, force: true });
    const run = await handle.wait();
    console.log(`fault agent-disk-full: ${LINES} lines journaled after the disk filled; the run finished ${Date.now() - fullAt} ms after space was back`);
    expect(run.status, JSON.stringify(run.steps.map((s) => [s.id, s.status, s.message]))).toBe('succeeded');
    expect(run.steps.map((s) => s.attempt)).toEqual([1, 1]);
    expect(lines(effects)).toEqual(['first START', 'first PRINTED', 'first END', 'second START', 'second END']);
    const texts = (await storedLogs(server.dataDir, handle.id)).map((l) => l.text);
    expect(texts).toEqual([
      ...Array.from({ length: LINES }, (_, i) => `first line ${i + 1} of the output the agent journals after the disk filled\n`),
      'second line 1\n',
    ]);
    expect(agent.output()).toContain('the journal can be written again');
    expect(isAlive(agent.child.pid!)).toBe(true);
    client.close();
  });
});
