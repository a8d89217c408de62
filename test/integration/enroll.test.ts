import { describe, expect, it } from 'vitest';
import { DroverClient } from '../../sdk/index.js';
import { ENTRY, startServer, tempDir, waitFor } from '../helpers/cluster.js';
import { spawn } from 'node:child_process';

function agent(server: string, name: string, token?: string) {
  const args = [ENTRY.agent, '--server', server, '--name', name, '--state-dir', tempDir()];
  if (token) args.push('--token', token);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return { child, stderr: () => err };
}

describe('enrollment token', () => {
  it('enrollment token - an agent without the right token is refused with the fix; the right one joins', async () => {
    const server = await startServer({ args: ['--enroll-token', 's3cret'] });
    const bad = agent(server.address, 'intruder', 'guess');
    const code = await new Promise<number | null>((r) => bad.child.once('exit', r));
    expect(code).toBe(1);
    expect(bad.stderr()).toMatch(/refused this agent \(BAD_TOKEN\): wrong or missing enrollment token: start the agent with --token/);

    const good = agent(server.address, 'member', 's3cret');
    const client = new DroverClient(server.clientOptions);
    await waitFor(async () => (await client.fleet.list()).some((a) => a.name === 'member' && a.state === 'connected'), 15_000, () => 'member to join');
    expect((await client.fleet.list()).map((a) => a.name)).toEqual(['member']);
    good.child.kill('SIGKILL');
    client.close();
  });
});
