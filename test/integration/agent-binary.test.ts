import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DroverClient } from '../../sdk/index.js';
import { agentBinary } from '../helpers/agent-binary.js';
import { startServer, tempDir, waitFor, type ServerProc } from '../helpers/cluster.js';
import { startDeviceSshd } from '../helpers/sshd.js';

/**
 * The tools a bare host has, and no `node`. (A PATH of /usr/bin:/bin would do
 * on a host without Node, but this machine has node in /usr/bin.)
 */
const HOST_TOOLS = ['sh', 'env', 'cat', 'echo', 'ls', 'uname', 'id', 'sleep', 'df', 'ps'];

let server: ServerProc;
let client: DroverClient;
let dir: string;
let binary: string;
let env: Record<string, string>;

beforeAll(async () => {
  dir = tempDir('drover-binary-');
  binary = join(dir, 'drover-agent');
  copyFileSync(agentBinary(), binary);
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  for (const tool of HOST_TOOLS) symlinkSync(`/usr/bin/${tool}`, join(bin, tool));
  env = { PATH: bin };
  server = await startServer();
  client = new DroverClient(server.clientOptions);
}, 120_000);

afterAll(() => client?.close());

/** Runs a command with nothing but `env` in its environment (as `env -i`). */
function bare(cmd: string, args: string[]) {
  return spawnSync(cmd, args, { env, cwd: dir, encoding: 'utf8' });
}

describe('agent binary - one file that runs without Node', () => {
  it('agent binary - the environment has no node, and the directory holds only the binary', () => {
    expect(bare('/bin/sh', ['-c', 'command -v node']).status).not.toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['bin', 'drover-agent']);
  });

  it('agent binary - --version prints the version and build commit; --help lists every flag', () => {
    const started = process.hrtime.bigint();
    const version = bare(binary, ['--version']);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    expect(version.status).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+ \(([0-9a-f]{7,}|unknown)\)$/);
    expect(version.stderr).toBe('');
    const help = bare(binary, ['--help']);
    expect(help.status).toBe(0);
    for (const flag of ['--server', '--name', '--label', '--state-dir', '--log-level', '--grace-ms', '--token', '--config', '--version']) {
      expect(help.stdout).toContain(flag);
    }
    process.stdout.write(`agent binary: ${(statSync(binary).size / 2 ** 20).toFixed(1)} MiB, --version in ${ms.toFixed(0)} ms\n`);
  });

  it('agent binary - registers with a real control plane and runs a step', async () => {
    const child = spawn(binary, ['--server', server.address, '--token', server.enrollToken, '--name', 'bare-1', '--label', 'kind=bare', '--state-dir', join(dir, 'state')], {
      env,
      cwd: dir,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    try {
      const agent = await waitFor(
        async () => (await client.fleet.list()).find((a) => a.name === 'bare-1' && a.state === 'connected'),
        20_000,
        () => `bare-1 to connect; its log:\n${log}`,
      );
      expect(agent.labels).toEqual({ kind: 'bare' });
      expect(agent.facts?.agentVersion).toMatch(/^\d+\.\d+\.\d+ \(/);

      const handle = await client.runs.launch({
        name: 'bare-step',
        steps: [
          {
            id: 'hello',
            target: { labels: { kind: 'bare' } },
            run: 'echo "hello from $DROVER_AGENT"; echo "kernel=$(uname -s)" >> "$DROVER_OUTPUT"; command -v node || echo "node=absent" >> "$DROVER_OUTPUT"',
          },
        ],
      });
      const run = await handle.wait();
      expect(run.status, run.message).toBe('succeeded');
      expect(run.steps[0]).toMatchObject({ agent: 'bare-1', status: 'succeeded', outputs: { kernel: 'Linux', node: 'absent' } });
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('agent binary - drives a network device over SSH as a proxy agent (ssh2 bundled without its native addons)', async () => {
    const device = await startDeviceSshd('edge-sw');
    const child = spawn(
      binary,
      ['--server', server.address, '--token', server.enrollToken, '--name', 'bare-proxy', '--label', 'proxy=binlab', '--state-dir', join(dir, 'proxy-state'),
        '--credential', `k=${device.identity}`, '--ssh-known-hosts', device.knownHosts],
      { env, cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    try {
      await waitFor(async () => (await client.fleet.list()).some((a) => a.name === 'bare-proxy' && a.state === 'connected'), 20_000, () => `bare-proxy to connect; its log:\n${log}`);
      await client.devices.add({ name: 'edge-sw', host: '127.0.0.1', port: device.port, user: device.user, credential: 'k', network: 'binlab' });
      const run = await (
        await client.runs.launch({ name: 'bare-ssh', steps: [{ id: 'show', ssh: { device: 'edge-sw', commands: ['show version'] } }] })
      ).wait();
      expect(run.steps[0]).toMatchObject({ agent: 'bare-proxy', status: 'succeeded' });
      expect(run.steps[0].outputs.out_0).toContain('edge-sw uptime is 5 minutes');
    } finally {
      child.kill('SIGTERM');
      await device.stop();
    }
  });
});
