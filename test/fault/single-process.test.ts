/**
 * The command is the process, and one process per directory: a SIGKILL of
 * the `drover server` / `drover agent` pid ends the service (nothing
 * orphaned, the port free); a second process on the same data or state dir
 * is refused, naming the holder; a stale lock from a killed one is taken over.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DroverClient } from '../../sdk/index.js';
import { ENTRY, cli, isAlive, startServer, tempDir, waitFor } from '../helpers/cluster.js';

function drover(args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [ENTRY.cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return { child, output: () => out };
}

const exited = (c: ChildProcess) => new Promise<number>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code, sig) => r(code ?? (sig ? 128 : 1)))));

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

describe('fault - one process per service and per directory', () => {
  it('fault - drover server: SIGKILL of its pid leaves no process and a free port; a second one on the data dir is refused; the stale lock is taken over', async () => {
    const dataDir = tempDir('drover-single-');
    const first = drover(['server', '--listen', '127.0.0.1:0', '--data-dir', dataDir]);
    const address = await waitFor(() => /listening on (\S+)/.exec(first.output())?.[1], 15_000, () => first.output());
    const holder = JSON.parse(readFileSync(join(dataDir, 'LOCK'), 'utf8')) as { pid: number };
    expect(holder.pid).toBe(first.child.pid);

    const stateBefore = statSync(join(dataDir, 'state.json')).mtimeMs;
    const second = drover(['server', '--listen', '127.0.0.1:0', '--data-dir', dataDir]);
    expect(await exited(second.child)).toBe(1);
    expect(second.output()).toContain(`error: ${dataDir} is in use by drover server (pid ${first.child.pid}`);
    expect(statSync(join(dataDir, 'state.json')).mtimeMs).toBe(stateBefore);

    first.child.kill('SIGKILL');
    await exited(first.child);
    const port = Number(address.split(':').pop());
    await waitFor(async () => (await portFree(port)) || undefined, 5000, () => `port ${port} to be free`);
    expect(isAlive(holder.pid)).toBe(false);

    const again = await startServer({ dataDir });
    const client = new DroverClient(again.clientOptions);
    expect(await client.fleet.list()).toEqual([]);
    client.close();
    expect((JSON.parse(readFileSync(join(dataDir, 'LOCK'), 'utf8')) as { pid: number }).pid).toBe(again.child.pid);
    await again.stop();
  });

  it('fault - drover agent: SIGKILL of its pid ends the agent; a second agent on its state dir is refused naming the holder', async () => {
    const server = await startServer();
    const stateDir = tempDir('drover-single-agent-');
    const agentArgs = ['agent', '--server', server.address, '--token', server.enrollToken, '--name', 'solo', '--state-dir', stateDir];
    const first = drover(agentArgs);
    const client = new DroverClient(server.clientOptions);
    await waitFor(async () => (await client.fleet.list()).some((a) => a.name === 'solo' && a.state === 'connected'), 20_000, () => first.output());
    const second = drover(agentArgs);
    expect(await exited(second.child)).toBe(1);
    expect(second.output()).toContain(`is in use by drover agent (pid ${first.child.pid}`);
    first.child.kill('SIGKILL');
    await exited(first.child);
    await waitFor(async () => (await client.fleet.list()).find((a) => a.name === 'solo')?.state !== 'connected' || undefined, 20_000, () => 'the agent to drop off');
    // Nothing else speaks for it: no orphan reconnects.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await client.fleet.list()).find((a) => a.name === 'solo')?.state).not.toBe('connected');
    const res = await cli(['fleet', '-o', 'json'], server.env);
    expect(res.code, res.stderr).toBe(0);
    client.close();
    await server.stop();
  });
});
