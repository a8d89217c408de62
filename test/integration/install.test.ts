import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DroverClient } from '../../sdk/index.js';
import { USER_COMMENT } from '../../sdk/install/plan.js';
import { agentBinary } from '../helpers/agent-binary.js';
import { cli, startServer, tempDir, waitFor, type ServerProc } from '../helpers/cluster.js';
import { keygen, startSshd, type Sshd } from '../helpers/sshd.js';

/** Installs copy and start an 85 MiB binary and wait for the agent: allow more than the default. */
const SLOW = 120_000;

let sshd: Sshd;
let server: ServerProc;
let client: DroverClient;
let root: string;
let prefix: string;
let binary: string;
/** Whether the service user existed before this file ran (then it must exist after, and the reverse). */
let userBefore: boolean;

function userExists(): boolean {
  return spawnSync('id', ['-u', 'drover-agent'], { stdio: 'ignore' }).status === 0;
}

/** Everything under the temporary root, as relative paths. */
function tree(dir = root, base = ''): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const rel = join(base, e.name);
    return e.isDirectory() ? [`${rel}/`, ...tree(join(dir, e.name), rel)] : [rel];
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** `drover agent install` through the test sshd into the temporary prefix. */
function install(args: string[], target = sshd.target) {
  return cli(['agent', 'install', target, '--known-hosts', sshd.knownHosts, '--prefix', prefix, '--binary', binary, ...args], server.env, SLOW);
}

function uninstall(args: string[]) {
  return cli(['agent', 'uninstall', sshd.target, '-i', sshd.identity, '--known-hosts', sshd.knownHosts, '--prefix', prefix, ...args], server.env, SLOW);
}

beforeAll(async () => {
  binary = agentBinary();
  sshd = await startSshd();
  server = await startServer();
  client = new DroverClient(server.clientOptions);
  root = tempDir('drover-install-root-');
  // The service user must be able to reach the binary under the prefix.
  chmodSync(root, 0o755);
  prefix = join(root, 'opt');
  // A run that crashed may have left the service user behind; it carries the installer's mark.
  if (spawnSync('sh', ['-c', `getent passwd drover-agent | grep -qF '${USER_COMMENT}'`]).status === 0) spawnSync('userdel', ['drover-agent']);
  userBefore = userExists();
}, SLOW);

afterAll(async () => {
  // Leave no agent running and no user behind, whatever failed.
  if (existsSync(prefix)) await uninstall(['--purge']);
  client?.close();
}, SLOW);

describe('install - what is refused leaves the host untouched', () => {
  it('install - --dry-run prints every command (sudo-free as root) and changes nothing', async () => {
    const r = await install(['-i', sshd.identity, '--server', server.address, '--name', 'ssh-1', '--label', 'role=ssh', '--enroll-token', 'tok3n', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${sshd.target}: dry run, nothing was changed`);
    for (const step of ['record the install as in progress', 'create the service user drover-agent', 'upload the agent binary', 'verify its SHA-256 on the host', 'supervise.sh start', 'roll back with:']) {
      expect(r.stdout).toContain(step);
    }
    expect(r.stdout).toMatch(/\$ sh -c 'echo '\\''[0-9a-f]{64} {2}\S+\/opt\/bin\/\.drover-agent\.new-[0-9a-f]{8}'\\'' \| sha256sum -c -/);
    expect(r.stdout).toContain('token: ********');
    expect(r.stdout).not.toContain('tok3n');
    expect(r.stdout).not.toContain('sudo -n');
    expect(r.stdout).toMatch(/ssh-1 +planned \(dry run\) +- +x64 +supervisor +no/);
    expect(tree()).toEqual([]);
    expect(userExists()).toBe(userBefore);
  });

  it('install - a key the host does not accept fails with AUTH_FAILED and the fix', async () => {
    const wrong = keygen(join(tempDir('drover-wrong-key-'), 'id_wrong'));
    const r = await install(['-i', wrong, '--server', server.address]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('FAILED: AUTH_FAILED');
    expect(r.stdout).toContain(`error: ${sshd.target}: the host did not accept the key ${wrong} for user ${sshd.user}; nothing was changed`);
    expect(r.stdout).toContain(`fix: add the public key (${wrong}.pub) to ~${sshd.user}/.ssh/authorized_keys on the host`);
    expect(tree()).toEqual([]);
  });

  it('install - an unknown host key fails with HOST_KEY_UNKNOWN unless --accept-new-host-key', async () => {
    const empty = join(tempDir('drover-known-'), 'known_hosts');
    writeFileSync(empty, '');
    const r = await cli(['agent', 'install', sshd.target, '-i', sshd.identity, '--known-hosts', empty, '--prefix', prefix, '--server', server.address], server.env, SLOW);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('FAILED: HOST_KEY_UNKNOWN');
    expect(r.stdout).toMatch(new RegExp(`the host key of 127\\.0\\.0\\.1:${sshd.port} is not in ${empty} \\(ssh-ed25519 SHA256:\\S+\\); nothing was changed`));
    expect(r.stdout).toContain('then run again with --accept-new-host-key');
    expect(readFileSync(empty, 'utf8')).toBe('');
    expect(tree()).toEqual([]);

    const accepted = await cli(['agent', 'uninstall', sshd.target, '-i', sshd.identity, '--known-hosts', empty, '--prefix', prefix, '--accept-new-host-key'], server.env, SLOW);
    expect(accepted.code, accepted.stdout).toBe(0);
    expect(accepted.stdout).toContain('not installed');
    expect(readFileSync(empty, 'utf8')).toBe(readFileSync(sshd.knownHosts, 'utf8'));
  });

  it('install - a changed host key always fails with HOST_KEY_CHANGED', async () => {
    const other = keygen(join(tempDir('drover-other-host-'), 'host_key'));
    const known = join(tempDir('drover-known-'), 'known_hosts');
    writeFileSync(known, `[127.0.0.1]:${sshd.port} ${readFileSync(`${other}.pub`, 'utf8').split(' ').slice(0, 2).join(' ')}\n`);
    const r = await cli(['agent', 'install', sshd.target, '-i', sshd.identity, '--known-hosts', known, '--accept-new-host-key', '--prefix', prefix, '--server', server.address], server.env, SLOW);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('FAILED: HOST_KEY_CHANGED');
    expect(r.stdout).toContain(`the host key of 127.0.0.1:${sshd.port} has CHANGED`);
    expect(r.stdout).toContain(`fix: if the host really was reinstalled, remove the old key with ssh-keygen -R '[127.0.0.1]:${sshd.port}'`);
    expect(tree()).toEqual([]);
  });

  it('install - an unreachable port fails with UNREACHABLE and the fix', async () => {
    const port = await freePort();
    const r = await install(['-i', sshd.identity, '--server', server.address], `${sshd.user}@127.0.0.1:${port}`);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('FAILED: UNREACHABLE');
    expect(r.stdout).toContain(`error: ${sshd.user}@127.0.0.1:${port}: cannot reach 127.0.0.1:${port}: the connection was refused (nothing listens on that port); nothing was changed`);
    expect(r.stdout).toContain('fix: check the address and port, that sshd runs on the host and that no firewall is in the way');
    expect(tree()).toEqual([]);
  });

  it('install - an agent that cannot reach its control plane fails with its log lines and is rolled back', async () => {
    const port = await freePort();
    const r = await install(['-i', sshd.identity, '--server', `127.0.0.1:${port}`, '--api', server.address, '--name', 'lonely-1', '--wait', '4']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('FAILED: NOT_CONNECTED');
    expect(r.stdout).toContain(`the agent lonely-1 did not connect to 127.0.0.1:${port} within 4 s (checked at ${server.address}); its last log lines:`);
    expect(r.stdout).toContain('"agent":"lonely-1"');
    expect(r.stdout).toContain('rolled back: the host is as it was before the install');
    expect(tree()).toEqual([]);
    expect(userExists()).toBe(userBefore);
  }, SLOW);
});

describe('install - install, run, upgrade, complete, uninstall', () => {
  let firstConnection = 0;

  it('install - installs the binary over SSH into a prefix; the agent registers and runs a workflow as the service user', async () => {
    const r = await install(['-i', sshd.identity, '--server', server.address, '--name', 'ssh-1', '--label', 'role=ssh', '--label', 'site=lab']);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/ssh-1 +installed +\d+\.\d+\.\d+ \(\w+\) +x64 +supervisor +no/);
    expect(r.stderr).toContain('upload the agent binary');

    const agent = await client.fleet.get('ssh-1');
    expect(agent).toMatchObject({ state: 'connected', labels: { role: 'ssh', site: 'lab' } });
    firstConnection = agent.connectedSince;
    const config = join(prefix, 'etc/agent.yaml');
    expect(statSync(config).mode & 0o777).toBe(0o600);
    expect(readFileSync(config, 'utf8')).toContain(`server: ${server.address}\nname: ssh-1\n`);
    expect(JSON.parse(readFileSync(join(prefix, 'etc/agent.install.json'), 'utf8'))).toMatchObject({ state: 'installed', name: 'ssh-1', init: 'supervisor' });
    expect(tree().filter((f) => !/^opt\/(state|log|run)\/./.test(f)).sort()).toEqual(
      ['opt/', 'opt/bin/', 'opt/bin/drover-agent', 'opt/etc/', 'opt/etc/agent.install.json', 'opt/etc/agent.yaml', 'opt/lib/', 'opt/lib/supervise.sh', 'opt/log/', 'opt/run/', 'opt/state/'].sort(),
    );

    const run = await (
      await client.runs.launch({
        name: 'via-ssh',
        steps: [{ id: 'who', target: { labels: { role: 'ssh' } }, run: 'echo "user=$(id -un)" >> "$DROVER_OUTPUT"; echo "agent=$DROVER_AGENT" >> "$DROVER_OUTPUT"' }],
      })
    ).wait();
    expect(run.status, run.message).toBe('succeeded');
    expect(run.steps[0]).toMatchObject({ agent: 'ssh-1', outputs: { user: 'drover-agent', agent: 'ssh-1' } });
  }, SLOW);

  it('install - a second install (from an inventory, next to an unreachable host) upgrades in place with the same name and state', async () => {
    writeFileSync(join(prefix, 'state/marker'), 'kept\n');
    const dead = await freePort();
    const inventory = join(tempDir('drover-inventory-'), 'hosts.yaml');
    writeFileSync(
      inventory,
      `defaults:\n  user: ${sshd.user}\n  identity: ${sshd.identity}\nhosts:\n  - host: 127.0.0.1\n    port: ${sshd.port}\n  - host: 127.0.0.1\n    port: ${dead}\n    name: ghost-1\n`,
    );
    const r = await cli(['agent', 'install', '--inventory', inventory, '--known-hosts', sshd.knownHosts, '--prefix', prefix, '--binary', binary, '--parallel', '2', '-o', 'json'], server.env, SLOW);
    expect(r.code).toBe(1);
    const results = JSON.parse(r.stdout) as { target: string; ok: boolean; outcome: string; name?: string; error?: { reason: string } }[];
    expect(results.map((x) => [x.target, x.outcome, x.error?.reason ?? ''])).toEqual([
      [`${sshd.user}@127.0.0.1:${sshd.port}`, 'upgraded', ''],
      [`${sshd.user}@127.0.0.1:${dead}`, 'failed', 'UNREACHABLE'],
    ]);
    expect(results[0].name).toBe('ssh-1');

    const agent = await client.fleet.get('ssh-1');
    expect(agent.state).toBe('connected');
    expect(agent.connectedSince).not.toBe(firstConnection);
    expect(agent.labels).toEqual({ role: 'ssh', site: 'lab' });
    expect((await client.fleet.list()).map((a) => a.name)).toEqual(['ssh-1']);
    expect(readFileSync(join(prefix, 'state/marker'), 'utf8')).toBe('kept\n');
    expect(tree().filter((f) => f.endsWith('.prev') || f.includes('.new'))).toEqual([]);
    const run = await (await client.runs.launch({ name: 'after-upgrade', steps: [{ id: 'again', target: { labels: { role: 'ssh' } }, run: 'true' }] })).wait();
    expect(run.status).toBe('succeeded');
  }, SLOW);

  it('install - a half-finished earlier install is detected and completed', async () => {
    const manifestFile = join(prefix, 'etc/agent.install.json');
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(manifestFile, JSON.stringify({ ...manifest, state: 'installing' }));
    const r = await install(['-i', sshd.identity]);
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/ssh-1 +completed/);
    expect(r.stdout).toContain('note: ');
    expect(r.stdout).toContain('a half-finished install (started');
    expect(JSON.parse(readFileSync(manifestFile, 'utf8'))).toMatchObject({ state: 'installed' });
    expect((await client.fleet.get('ssh-1')).state).toBe('connected');
  }, SLOW);

  it('install - uninstall removes what install added and keeps the state; --purge removes the rest', async () => {
    const dry = await uninstall(['--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('supervise.sh stop');
    expect(existsSync(join(prefix, 'bin/drover-agent'))).toBe(true);

    const r = await uninstall([]);
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/ssh-1 +uninstalled/);
    expect(r.stdout).toContain('kept the state dir');
    await waitFor(async () => (await client.fleet.get('ssh-1')).state !== 'connected', 15_000, () => 'ssh-1 to disconnect');
    expect(tree().filter((f) => !/^opt\/(state|log)\/./.test(f)).sort()).toEqual(['opt/', 'opt/log/', 'opt/state/']);
    expect(readFileSync(join(prefix, 'state/marker'), 'utf8')).toBe('kept\n');

    const purge = await uninstall(['--purge']);
    expect(purge.code, purge.stdout).toBe(0);
    expect(tree()).toEqual([]);
    expect(userExists()).toBe(userBefore);
  }, SLOW);
});
