import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DroverClient } from '../../sdk/index.js';
import { agentBinary } from '../helpers/agent-binary.js';
import { cli, startServer, tempDir, type ServerProc } from '../helpers/cluster.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';

/**
 * A login user that is not root: the installer must use `sudo -n` for every
 * privileged step and say so. The test creates that user (and removes it),
 * so it needs root; it is skipped otherwise.
 */
const LOGIN = 'drover-deploy';
const SUDOERS = `/etc/sudoers.d/${LOGIN}`;
const SLOW = 120_000;
const asRoot = process.getuid?.() === 0;

let sshd: Sshd;
let server: ServerProc;
let client: DroverClient;
let root: string;
let prefix: string;
let binary: string;

function sh(cmd: string, args: string[]): void {
  const res = spawnSync(cmd, args, { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${res.stderr}`);
}

function install(args: string[]) {
  return cli(['agent', 'install', `${LOGIN}@127.0.0.1:${sshd.port}`, '-i', sshd.identity, '--known-hosts', sshd.knownHosts, '--prefix', prefix, '--binary', binary, ...args], server.env, SLOW);
}

function uninstall(args: string[]) {
  return cli(['agent', 'uninstall', `${LOGIN}@127.0.0.1:${sshd.port}`, '-i', sshd.identity, '--known-hosts', sshd.knownHosts, '--prefix', prefix, ...args], server.env, SLOW);
}

describe.skipIf(!asRoot)('install with sudo - a login user that is not root', () => {
  beforeAll(async () => {
    binary = agentBinary();
    if (spawnSync('id', ['-u', LOGIN], { stdio: 'ignore' }).status !== 0) sh('useradd', ['--create-home', '--shell', '/bin/sh', LOGIN]);
    // '*' instead of useradd's '!': sshd without PAM refuses key logins to locked accounts.
    sh('usermod', ['-p', '*', LOGIN]);
    rmSync(SUDOERS, { force: true });
    sshd = await startSshd();
    server = await startServer();
    client = new DroverClient(server.clientOptions);
    root = tempDir('drover-sudo-root-');
    chmodSync(root, 0o755);
    prefix = join(root, 'opt');
  }, SLOW);

  afterAll(async () => {
    if (existsSync(SUDOERS) && existsSync(prefix)) await uninstall(['--purge']);
    rmSync(SUDOERS, { force: true });
    spawnSync('userdel', ['--remove', LOGIN], { stdio: 'ignore' });
    client?.close();
  }, SLOW);

  it('install with sudo - without passwordless sudo the host is refused before any change, with the fix', async () => {
    const r = await install(['--server', server.address]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('FAILED: SUDO_FAILED');
    expect(r.stdout).toContain(`${LOGIN} is not root and cannot use sudo without a password`);
    expect(r.stdout).toContain(`fix: log in as root, or allow ${LOGIN} passwordless sudo`);
    expect(existsSync(prefix)).toBe(false);
  });

  it('install with sudo - privileged steps go through sudo -n and say so; the agent runs as the service user', async () => {
    writeFileSync(SUDOERS, `${LOGIN} ALL=(root) NOPASSWD: ALL\n`, { mode: 0o440 });
    const dry = await install(['--server', server.address, '--name', 'sudo-1', '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('the login user is not root, so privileged commands use sudo -n');
    expect(dry.stdout).toContain("$ sudo -n sh -c 'umask 022 && mkdir -p");
    expect(existsSync(prefix)).toBe(false);

    const r = await install(['--server', server.address, '--name', 'sudo-1', '--label', 'role=sudo']);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/sudo-1 +installed +\S+ \(\w+\) +x64 +supervisor +yes/);
    expect(r.stderr).toContain('write');
    expect(r.stderr).toMatch(/move the binary into place at \S+ \(sudo\)/);
    expect(r.stderr).toMatch(/upload the agent binary \([\d.]+ MiB\) to \/tmp\n/);
    expect(readdirSync('/tmp').filter((f) => /^drover-agent\.[0-9a-f]{8}$/.test(f))).toEqual([]);
    const config = statSync(join(prefix, 'etc/agent.yaml'));
    expect(config.mode & 0o777).toBe(0o600);
    expect(config.uid).not.toBe(0);

    const run = await (await client.runs.launch({ name: 'as-who', steps: [{ id: 'who', target: { labels: { role: 'sudo' } }, run: 'echo "user=$(id -un)" >> "$DROVER_OUTPUT"' }] })).wait();
    expect(run.steps[0]).toMatchObject({ status: 'succeeded', agent: 'sudo-1', outputs: { user: 'drover-agent' } });

    const gone = await uninstall(['--purge']);
    expect(gone.code, gone.stdout).toBe(0);
    expect(gone.stdout).toMatch(/sudo-1 +uninstalled .* yes/);
    expect(existsSync(prefix)).toBe(false);
  }, SLOW);
});
