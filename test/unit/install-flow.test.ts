import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InstallError, serverUnreachable } from '../../sdk/errors.js';
import { installAgent, type InstallDeps } from '../../sdk/install/install.js';
import { resolveInstallOptions } from '../../sdk/install/options.js';
import type { ExecResult, RemoteHost } from '../../sdk/install/ssh.js';
import type { Agent } from '../../sdk/types.js';

/** A fake ELF x86-64 file, enough for the installer's architecture check. */
function fakeBinary(): string {
  const dir = mkdtempSync(join(tmpdir(), 'drover-fake-bin-'));
  const file = join(dir, 'drover-agent-linux-x64');
  const head = Buffer.alloc(64);
  head.writeUInt32BE(0x7f454c46, 0);
  head.writeUInt16LE(0x3e, 18);
  writeFileSync(file, head);
  return file;
}

const BINARY = fakeBinary();

interface FakeHostOptions {
  facts?: string;
  existing?: string;
  /** Exit code and stderr for the first command containing the key. */
  fail?: Record<string, { code: number; stderr: string }>;
}

const FACTS = 'os=Linux\nmachine=x86_64\nhostname=web-1\nuid=0\nuser=root\npid1=init\ntool=sha256sum\ntool=useradd\ntool=setpriv\ntool=setsid\ntool=nohup\ntool=sudo\nfree_bin_kb=9000000\nfree_tmp_kb=9000000\n';

/** Answers the probes, records every command, and fails the ones it is told to. */
class FakeHost implements RemoteHost {
  readonly commands: string[] = [];
  constructor(private readonly o: FakeHostOptions = {}) {}
  async exec(command: string): Promise<ExecResult> {
    this.commands.push(command);
    for (const [key, res] of Object.entries(this.o.fail ?? {})) if (command.includes(key)) return { code: res.code, stdout: '', stderr: res.stderr };
    if (command.includes('uname -s')) return { code: 0, stdout: this.o.facts ?? FACTS, stderr: '' };
    if (command.includes('@@drover-section@@')) return { code: 0, stdout: this.o.existing ?? '@@drover-section@@ flags\n', stderr: '' };
    if (command.includes('--version')) return { code: 0, stdout: '0.1.0 (abc1234)\n', stderr: '' };
    if (command.includes('tail -n')) return { code: 0, stdout: '{"level":50,"msg":"cannot reach the control plane"}\n', stderr: '' };
    return { code: 0, stdout: '', stderr: '' };
  }
  async execWithFile(command: string): Promise<ExecResult> {
    return this.exec(command);
  }
  close(): void {}
}

function deps(host: FakeHost, agent: () => Agent | undefined = () => connected()): InstallDeps {
  return { connect: async () => host, agent: async () => agent(), enrollToken: async (_api, name) => `drover-enroll.${'0'.repeat(64)}.t0.for-${name}`, sleep: async () => {} };
}

function connected(): Agent {
  return {
    name: 'web-1',
    state: 'connected',
    labels: {},
    lastSeen: 1,
    connectedSince: 2,
    draining: false,
    runningSteps: 0,
    transport: 'grpc',
    peer: '',
    facts: { agentVersion: '0.1.0 (abc1234)' } as Agent['facts'],
  };
}

function options(over: Record<string, unknown> = {}) {
  return resolveInstallOptions({
    target: { user: 'root', host: '10.0.0.5', port: 22 },
    identity: '/dev/null',
    server: 'cp:7400',
    prefix: '/opt/drover',
    binary: BINARY,
    waitMs: 1000,
    ...over,
  });
}

/** Commands after the read-only probes (facts, earlier install). */
function changes(host: FakeHost): string[] {
  return host.commands.filter((c) => !c.includes('uname -s') && !c.includes('@@drover-section@@') && c !== 'sudo -n true');
}

describe('install flow - bad hosts are refused before any change', () => {
  it('install flow - an unsupported architecture is reported with the fix and nothing is changed', async () => {
    const host = new FakeHost({ facts: FACTS.replace('x86_64', 'armv7l') });
    const r = await installAgent(options(), {}, deps(host));
    expect(r.ok).toBe(false);
    expect(r.error).toBeInstanceOf(InstallError);
    expect(r.error).toMatchObject({ reason: 'UNSUPPORTED_PLATFORM', hint: 'install on an x86_64 or aarch64 host' });
    expect(r.error!.message).toBe('root@10.0.0.5:22: unsupported architecture armv7l (uname -m); agents are built for x86_64 and aarch64 only; nothing was changed');
    expect(changes(host)).toEqual([]);
  });

  it('install flow - too little disk space for the binary is reported with the fix and nothing is changed', async () => {
    const host = new FakeHost({ facts: FACTS.replace('free_bin_kb=9000000', 'free_bin_kb=100') });
    const r = await installAgent(options(), {}, deps(host));
    expect(r.error).toMatchObject({ reason: 'NO_DISK_SPACE', hint: 'free some space there, or install elsewhere with --prefix DIR' });
    expect(r.error!.message).toMatch(/not enough disk space for the binary in \/opt\/drover\/bin: 1 MiB needed, 0 MiB free; nothing was changed/);
    expect(changes(host)).toEqual([]);
  });

  it('install flow - a login user without passwordless sudo is refused before any change', async () => {
    const host = new FakeHost({ facts: FACTS.replace('uid=0', 'uid=1000').replace('user=root', 'user=deploy'), fail: { 'sudo -n true': { code: 1, stderr: 'sudo: a password is required' } } });
    const r = await installAgent(options(), {}, deps(host));
    expect(r.error).toMatchObject({ reason: 'SUDO_FAILED' });
    expect(r.error!.message).toBe('root@10.0.0.5:22: deploy is not root and cannot use sudo without a password (sudo: a password is required); nothing was changed');
    expect(r.sudo).toBe(true);
    expect(changes(host)).toEqual([]);
  });

  it('install flow - a different --name than the installed agent is refused', async () => {
    const host = new FakeHost({ existing: '@@drover-section@@ config\nname: db-1\nserver: cp:7400\n@@drover-section@@ flags\nbinary\n' });
    const r = await installAgent(options({ name: 'web-1' }), {}, deps(host));
    expect(r.error).toMatchObject({ reason: 'NAME_CONFLICT' });
    expect(changes(host)).toEqual([]);
  });
});

describe('install flow - failures after the first change roll back', () => {
  it('install flow - a failing step rolls a first install back and says the host is as it was', async () => {
    const host = new FakeHost({ fail: { 'supervise.sh start': { code: 1, stderr: 'the drover-agent supervisor did not start' } } });
    const r = await installAgent(options(), {}, deps(host));
    expect(r.error).toMatchObject({ reason: 'COMMAND_FAILED', rolledBack: true });
    expect(r.error!.message).toBe(
      'root@10.0.0.5:22: start the agent failed (exit 1): the drover-agent supervisor did not start\n  rolled back: the host is as it was before the install',
    );
    const last = changes(host).slice(-2);
    expect(last[0]).toContain('supervise.sh stop');
    expect(last[1]).toContain('rm -rf /opt/drover/state');
  });

  it('install flow - an agent that does not connect fails with its last log lines, then rolls back', async () => {
    const host = new FakeHost();
    const r = await installAgent(options(), {}, deps(host, () => undefined));
    expect(r.error).toMatchObject({ reason: 'NOT_CONNECTED', rolledBack: true });
    expect(r.error!.message).toContain('the agent web-1 did not connect to cp:7400 within 1 s; its last log lines:\n    {"level":50,"msg":"cannot reach the control plane"}');
    expect(r.error!.message).toContain('rolled back: the host is as it was before the install');
  });

  it('install flow - a control plane this machine cannot reach is named as the problem, with --api and --no-wait as fixes', async () => {
    const host = new FakeHost();
    const unreachable: InstallDeps = { ...deps(host), agent: async () => { throw serverUnreachable('cp:7400'); } };
    const r = await installAgent(options(), {}, unreachable);
    expect(r.error).toMatchObject({ reason: 'NOT_CONNECTED', hint: 'pass --api with the address this machine reaches the control plane at, or --no-wait to skip the check' });
    expect(r.error!.message).toContain('no control plane answered this command at cp:7400 within 1 s, so the agent could not be seen connecting');
  });

  it('install flow - an upgrade waits for a new connection, not the old agent still shown connected', async () => {
    const host = new FakeHost({ existing: '@@drover-section@@ config\nname: web-1\nserver: cp:7400\n@@drover-section@@ flags\nbinary\nsupervisor\nrunning\n' });
    const r = await installAgent(options(), {}, deps(host, () => connected()));
    expect(r.error).toMatchObject({ reason: 'NOT_CONNECTED', rolledBack: true });
    expect(r.error!.message).toContain('rolled back: the previous agent is restored');
  });

  it('install flow - success runs the commit with the version the host printed', async () => {
    const host = new FakeHost();
    let asked = 0;
    // Unknown before the install, connected after it.
    const r = await installAgent(options(), {}, deps(host, () => (asked++ === 0 ? undefined : connected())));
    expect(r).toMatchObject({ ok: true, outcome: 'installed', name: 'web-1', version: '0.1.0 (abc1234)', init: 'supervisor', sudo: false });
    expect(changes(host).at(-1)).toContain('agent.install.json');
  });
});
