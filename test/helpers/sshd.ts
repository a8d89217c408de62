/**
 * A real OpenSSH server for integration tests: /usr/sbin/sshd (Debian
 * `openssh-server`) on an ephemeral 127.0.0.1 port, with throwaway host and
 * client keys and its own sshd_config in a temp dir (never the system one).
 * It is stopped after the test file.
 *
 * With `forceCommand`, every session runs that command instead of a shell or
 * what the client asked for (sshd's ForceCommand; the client's command is in
 * $SSH_ORIGINAL_COMMAND): startDeviceSshd() uses it to make the server act as
 * a network device (test/helpers/device-cli.sh).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { tempDir, waitFor } from './cluster.js';

/** sshd must be started by absolute path (it re-executes itself). */
export const SSHD = '/usr/sbin/sshd';
const SSH_KEYGEN = '/usr/bin/ssh-keygen';

const running = new Set<ChildProcess>();
afterAll(() => {
  for (const child of running) child.kill('SIGKILL');
});

export interface Sshd {
  host: '127.0.0.1';
  port: number;
  /** The user sshd lets in: whoever runs the tests. */
  user: string;
  /** `user@127.0.0.1:port`, as `drover agent install` takes it. */
  target: string;
  /** A private key listed in authorized_keys. */
  identity: string;
  /** A known_hosts file that holds this server's host key. */
  knownHosts: string;
  /** The temp dir holding keys, config and pidfile. */
  dir: string;
  /** What sshd logged so far. */
  log(): string;
  stop(): Promise<void>;
}

export interface SshdOptions {
  /** Run this for every session (sshd's ForceCommand). */
  forceCommand?: string;
}

/** Generates an ed25519 key pair at `path` (and `path.pub`). */
export function keygen(path: string, comment = 'drover-test'): string {
  const res = spawnSync(SSH_KEYGEN, ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`ssh-keygen failed: ${res.stderr}`);
  return path;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Starts sshd; fails with the package to install when it is missing. */
export async function startSshd(opts: SshdOptions = {}): Promise<Sshd> {
  if (!existsSync(SSHD) || !existsSync(SSH_KEYGEN)) {
    throw new Error(
      `${existsSync(SSHD) ? SSH_KEYGEN : SSHD} is missing: install the Debian package openssh-server ` +
        '(apt-get install openssh-server; `bash scripts/setup-test-deps.sh` does it)',
    );
  }
  // sshd refuses to start without its privilege separation directory.
  if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = tempDir('drover-sshd-');
  const hostKey = keygen(join(dir, 'ssh_host_ed25519_key'), 'drover-test-host');
  const identity = keygen(join(dir, 'id_client'), 'drover-test-client');
  // sshd reads authorized_keys as the logging-in user: let users other than the owner reach it (the private keys stay 0600).
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${identity}.pub`), { mode: 0o644 });
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'StrictModes no',
      'UsePAM no',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'Subsystem sftp internal-sftp',
      'LogLevel VERBOSE',
      ...(opts.forceCommand ? [`ForceCommand ${opts.forceCommand}`] : []),
      '',
    ].join('\n'),
  );
  const hostPub = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${hostPub}\n`);

  const child = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  running.add(child);
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  child.once('exit', () => running.delete(child));
  await waitFor(
    () => log.includes(`Server listening on 127.0.0.1 port ${port}`) || (child.exitCode !== null ? 'exited' : undefined),
    10_000,
    () => `sshd to listen on 127.0.0.1:${port}:\n${log}`,
  );
  if (child.exitCode !== null) throw new Error(`sshd exited with ${child.exitCode}:\n${log}`);
  const user = userInfo().username;
  return {
    host: '127.0.0.1',
    port,
    user,
    target: `${user}@127.0.0.1:${port}`,
    identity,
    knownHosts,
    dir,
    log: () => log,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** The device CLI script sshd runs in startDeviceSshd(). */
export const DEVICE_CLI = join(import.meta.dirname, 'device-cli.sh');

export interface DeviceSshd extends Sshd {
  /** The device's name (its prompt is `NAME#`). */
  name: string;
  /** The device CLI's log: "<epoch.ns> <pid> <event> [command]" lines. */
  deviceLog: string;
  /** A file whose content the device prints in `show running-config` (a secret it holds). */
  secretFile: string;
}

/**
 * A real sshd that acts as a network device: every session runs
 * device-cli.sh (a prompt, `show version`, `show interfaces`,
 * `configure terminal`, "% Invalid input detected" for unknown commands).
 */
export async function startDeviceSshd(name = 'switch1'): Promise<DeviceSshd> {
  const dir = tempDir('drover-device-');
  chmodSync(dir, 0o755);
  const deviceLog = join(dir, 'device.log');
  const secretFile = join(dir, 'secret');
  writeFileSync(deviceLog, '', { mode: 0o666 });
  writeFileSync(secretFile, '', { mode: 0o644 });
  const sshd = await startSshd({ forceCommand: `/bin/sh ${DEVICE_CLI} ${deviceLog} ${name} ${secretFile}` });
  return { ...sshd, name, deviceLog, secretFile };
}
