import { createHmac } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkHostKey, hostKeyAlgorithms, keysFor } from '../../common/known-hosts.js';
import { InvalidInputError } from '../../sdk/errors.js';
import type { ExistingInstall, HostFacts, Manifest } from '../../sdk/install/facts.js';
import { existingProbe, parseExisting, parseFacts } from '../../sdk/install/facts.js';
import { renderUnit } from '../../sdk/install/files.js';
import { parseInventory } from '../../sdk/install/inventory.js';
import { layoutDirs, layoutFor } from '../../sdk/install/layout.js';
import { planInstall, planUninstall, type InstallInput } from '../../sdk/install/plan.js';
import { quote } from '../../sdk/install/shell.js';
import { formatTarget, parseTarget } from '../../sdk/install/target.js';

const layout = layoutFor('/opt/drover');

function facts(over: Partial<HostFacts> = {}): HostFacts {
  return {
    os: 'Linux',
    machine: 'x86_64',
    arch: 'x64',
    hostname: 'web-1',
    uid: 0,
    user: 'root',
    pid1: 'init',
    systemd: false,
    tools: new Set(['sha256sum', 'useradd', 'setpriv', 'setsid', 'nohup', 'df', 'tail']),
    serviceUserExists: false,
    freeKbBin: 10_000_000,
    freeKbTmp: 10_000_000,
    existingDirs: [],
    ...over,
  };
}

const nothing: ExistingInstall = { binary: false, stateDir: false, unit: false, supervisor: false, running: false };

function input(over: Partial<InstallInput> = {}): InstallInput {
  return {
    layout,
    facts: facts(),
    existing: nothing,
    binary: { path: '/tmp/drover-agent-linux-x64', sha256: 'ab'.repeat(32), bytes: 80 * 2 ** 20 },
    config: { server: 'cp:7400', name: 'web-1', labels: { role: 'web' }, stateDir: layout.stateDir, token: 's3cret-token' },
    serviceUser: 'drover-agent',
    init: 'supervisor',
    nonce: 'n0nce',
    now: '2025-01-01T00:00:00.000Z',
    ...over,
  };
}

const installed: Manifest = {
  format: 1,
  state: 'installed',
  startedAt: '2024-12-01T00:00:00.000Z',
  fresh: true,
  name: 'web-1',
  init: 'supervisor',
  serviceUser: 'drover-agent',
  createdUser: true,
  createdDirs: ['/opt/drover', '/opt/drover/bin'],
  agentVersion: '0.1.0 (abc1234)',
};

describe('install plan - first install', () => {
  it('install plan - a first install as root runs every step without sudo, in order, and rolls back by removing everything', () => {
    const plan = planInstall(input());
    expect(plan.kind).toBe('install');
    expect(plan.sudo).toBe(false);
    expect(plan.actions.map((a) => a.id)).toEqual(['begin', 'user', 'dirs', 'upload', 'verify', 'check', 'config', 'service', 'swap', 'start']);
    for (const a of plan.actions) expect(a.command).toMatch(/^sh -c /);
    const upload = plan.actions.find((a) => a.id === 'upload')!;
    expect(upload.command).toBe(`sh -c ${quote('umask 077 && cat > /opt/drover/bin/.drover-agent.new-n0nce')}`);
    expect(upload.stdin).toEqual({ file: '/tmp/drover-agent-linux-x64', bytes: 80 * 2 ** 20 });
    expect(plan.actions.find((a) => a.id === 'verify')!.command).toContain(`${'ab'.repeat(32)}  /opt/drover/bin/.drover-agent.new-n0nce`);
    expect(plan.actions.find((a) => a.id === 'check')!.command).toContain('setpriv --reuid="$(id -u drover-agent)"');
    expect(plan.actions.find((a) => a.id === 'user')!.command).toContain('useradd --system');
    expect(plan.rollback.map((a) => a.id)).toEqual(['rollback-stop', 'rollback-remove']);
    expect(plan.rollback[1].command).toContain('rm -rf /opt/drover/state');
    expect(plan.rollback[1].command).toContain('userdel drover-agent');
  });

  it('install plan - the config is written 0600 for the service user and the token is marked secret', () => {
    const config = planInstall(input()).actions.find((a) => a.id === 'config')!;
    expect(config.command).toContain('chmod 600');
    expect(config.command).toContain('chown drover-agent:');
    expect(config.stdin).toMatchObject({ secret: 's3cret-token' });
    expect((config.stdin as { text: string }).text).toContain('server: cp:7400\nname: web-1\nlabels:\n  role: web\nstateDir: /opt/drover/state\ntoken: s3cret-token\n');
  });

  it('install plan - a login user that is not root gets sudo -n for privileged steps only, and uploads to /tmp first', () => {
    const plan = planInstall(input({ facts: facts({ uid: 1000, user: 'deploy' }) }));
    expect(plan.sudo).toBe(true);
    const byId = Object.fromEntries(plan.actions.map((a) => [a.id, a]));
    expect(byId.upload.sudo).toBe(false);
    expect(byId.upload.command).toBe(`sh -c ${quote('umask 077 && cat > /tmp/drover-agent.n0nce')}`);
    expect(byId.verify.command).toMatch(/^sudo -n sh -c .*cp \/tmp\/drover-agent.n0nce \/opt\/drover\/bin\/.drover-agent.new-n0nce/);
    for (const id of ['begin', 'user', 'dirs', 'verify', 'check', 'config', 'service', 'swap', 'start']) {
      expect(byId[id].sudo, id).toBe(true);
      expect(byId[id].command, id).toMatch(/^sudo -n sh -c /);
    }
  });

  it('install plan - systemd as PID 1 gets a unit running as the service user; the supervisor is not written', () => {
    const plan = planInstall(input({ init: 'systemd', layout: layoutFor() }));
    const service = plan.actions.find((a) => a.id === 'service')!;
    expect(service.command).toContain('systemctl daemon-reload && systemctl enable --quiet drover-agent');
    expect(plan.actions.find((a) => a.id === 'start')!.command).toBe(`sh -c ${quote('systemctl restart drover-agent')}`);
    expect(renderUnit(layoutFor(), 'drover-agent')).toContain('User=drover-agent\nExecStart=/usr/local/bin/drover-agent --config /etc/drover/agent.yaml\nRestart=always');
    expect(plan.actions.some((a) => a.command.includes('supervise.sh'))).toBe(false);
  });

  it('install plan - without useradd or adduser the agent runs as root, and the plan says so', () => {
    const plan = planInstall(input({ facts: facts({ tools: new Set(['sha256sum', 'setsid', 'nohup']) }) }));
    expect(plan.actions.map((a) => a.id)).not.toContain('user');
    expect(plan.notes.join('\n')).toMatch(/no service user can be created: the agent runs as root/);
    expect(plan.actions.find((a) => a.id === 'check')!.command).toBe(`sh -c ${quote("/opt/drover/bin/.drover-agent.new-n0nce --version")}`);
  });
});

describe('install plan - upgrade and half-finished installs', () => {
  it('install plan - an upgrade keeps the current files as .prev, stops the agent before the swap, and rolls back by restoring them', () => {
    const plan = planInstall(
      input({
        existing: { ...nothing, manifest: installed, binary: true, stateDir: true, supervisor: true, running: true },
        facts: facts({ serviceUserExists: true, existingDirs: layoutDirs(layout) }),
      }),
    );
    expect(plan.kind).toBe('upgrade');
    expect(plan.actions.map((a) => a.id)).toEqual(['begin', 'dirs', 'upload', 'verify', 'check', 'backup', 'config', 'service', 'stop', 'swap', 'start']);
    expect(plan.rollback.map((a) => a.id)).toEqual(['rollback-stop', 'rollback-restore', 'rollback-record', 'rollback-start']);
    expect(plan.rollback.some((a) => a.command.includes('rm -rf /opt/drover/state'))).toBe(false);
    const record = JSON.parse((plan.actions[0].stdin as { text: string }).text) as Manifest & { previous?: Manifest };
    expect(record).toMatchObject({ state: 'installing', fresh: false, createdUser: true, createdDirs: ['/opt/drover', '/opt/drover/bin'], previous: installed });
    const committed = JSON.parse((plan.commit('0.2.0 (def5678)')[0].stdin as { text: string }).text) as Manifest;
    expect(committed).toMatchObject({ state: 'installed', agentVersion: '0.2.0 (def5678)' });
    expect(committed).not.toHaveProperty('previous');
  });

  it('install plan - a half-finished earlier install is completed, and a failure rolls back to the state before it', () => {
    const half: Manifest = { ...installed, state: 'installing', startedAt: '2024-12-24T00:00:00.000Z', fresh: true };
    const plan = planInstall(input({ existing: { ...nothing, manifest: half, binary: true } }));
    expect(plan.kind).toBe('complete');
    expect(plan.notes[0]).toMatch(/half-finished install \(started 2024-12-24T00:00:00.000Z\) was found; it is completed now, or rolled back/);
    expect(plan.rollback.map((a) => a.id)).toContain('rollback-remove');
    expect(plan.actions.map((a) => a.id)).not.toContain('backup');
  });
});

describe('install plan - uninstall', () => {
  const present = { ...nothing, manifest: installed, binary: true, stateDir: true, supervisor: true };

  it('install plan - uninstall removes service, binary and config but keeps the state dir unless --purge', () => {
    const keep = planUninstall({ layout, facts: facts(), existing: present, purge: false });
    expect(keep.actions.map((a) => a.id)).toEqual(['stop', 'service', 'files', 'dirs']);
    expect(keep.notes).toEqual(['kept the state dir /opt/drover/state and the service user (remove them with --purge)']);
    expect(keep.actions.some((a) => a.command.includes('rm -rf /opt/drover/state'))).toBe(false);
    const purge = planUninstall({ layout, facts: facts(), existing: present, purge: true });
    expect(purge.actions.map((a) => a.id)).toEqual(['stop', 'service', 'files', 'purge', 'dirs']);
    expect(purge.actions.find((a) => a.id === 'purge')!.command).toContain('rm -rf /opt/drover/state');
  });

  it('install plan - uninstall on a host without an agent plans nothing', () => {
    expect(planUninstall({ layout, facts: facts(), existing: nothing, purge: false })).toEqual({ actions: [], sudo: false, notes: ['no drover agent is installed here'] });
  });
});

describe('install facts - probes', () => {
  it('install facts - uname -m maps to the agent build; systemd counts only as PID 1 with systemctl', () => {
    const f = parseFacts('os=Linux\nmachine=aarch64\nhostname=pi\nuid=1000\nuser=pi\npid1=systemd\ntool=systemctl\ntool=sudo\nfree_bin_kb=12345\nfree_tmp_kb=99\ndir=/usr/local/bin\n');
    expect(f).toMatchObject({ os: 'Linux', arch: 'arm64', uid: 1000, systemd: true, freeKbBin: 12345, freeKbTmp: 99, existingDirs: ['/usr/local/bin'] });
    expect(parseFacts('machine=armv7l\npid1=systemd\n')).toMatchObject({ arch: undefined, systemd: false });
  });

  it('install facts - the earlier-install probe output parses into manifest, config and flags', () => {
    const text = `@@drover-section@@ manifest\n${JSON.stringify(installed)}\n\n@@drover-section@@ config\nserver: cp:7400\nname: web-1\nlabels: { role: web }\n\n@@drover-section@@ flags\nbinary\nstateDir\nsupervisor\nrunning\n`;
    expect(parseExisting(text)).toEqual({
      manifest: installed,
      config: { server: 'cp:7400', name: 'web-1', labels: { role: 'web' } },
      binary: true,
      stateDir: true,
      unit: false,
      supervisor: true,
      running: true,
    });
    expect(existingProbe(layout)).toContain("[ -f /opt/drover/bin/drover-agent ] && echo binary");
  });
});

describe('install target and known_hosts', () => {
  it('install target - user@host[:port] parses, IPv6 in brackets, and bad input names the format', () => {
    expect(parseTarget('root@10.0.0.5')).toEqual({ user: 'root', host: '10.0.0.5', port: 22 });
    expect(parseTarget('deploy@web-1.example:2222')).toEqual({ user: 'deploy', host: 'web-1.example', port: 2222 });
    expect(parseTarget('ops@[fe80::1]:22')).toEqual({ user: 'ops', host: 'fe80::1', port: 22 });
    expect(formatTarget({ user: 'ops', host: 'fe80::1', port: 22 })).toBe('ops@[fe80::1]:22');
    expect(() => parseTarget('root@host:99999')).toThrow(InvalidInputError);
    expect(() => parseTarget('root@host:99999')).toThrow('"root@host:99999" is not user@host[:port]');
  });

  it('known hosts - plain, [host]:port, hashed and negated entries match; a different key is "changed", none is "unknown"', () => {
    const key = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from('key-one')]);
    const other = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from('key-two')]);
    const salt = Buffer.from('0123456789abcdef0123');
    const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('[10.0.0.9]:2222').digest('base64')}`;
    const text = [
      `# comment`,
      `10.0.0.5,web-1 ssh-ed25519 ${key.toString('base64')}`,
      `[127.0.0.1]:2200 ssh-ed25519 ${key.toString('base64')}`,
      `${hashed} ssh-ed25519 ${key.toString('base64')}`,
      `*.example,!bad.example ssh-ed25519 ${key.toString('base64')}`,
      `@revoked * ssh-ed25519 ${other.toString('base64')}`,
    ].join('\n');
    expect(checkHostKey(keysFor(text, '10.0.0.5', 22), key)).toEqual({ status: 'known' });
    expect(checkHostKey(keysFor(text, '127.0.0.1', 2200), key)).toEqual({ status: 'known' });
    expect(checkHostKey(keysFor(text, '127.0.0.1', 22), key)).toEqual({ status: 'unknown' });
    expect(checkHostKey(keysFor(text, '10.0.0.9', 2222), key)).toEqual({ status: 'known' });
    expect(checkHostKey(keysFor(text, 'a.example', 22), key)).toEqual({ status: 'known' });
    expect(checkHostKey(keysFor(text, 'bad.example', 22), key)).toEqual({ status: 'unknown' });
    expect(checkHostKey(keysFor(text, 'web-1', 22), other)).toEqual({ status: 'revoked' });
    const third = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from('key-3')]);
    expect(checkHostKey(keysFor(text, 'web-1', 22), third)).toEqual({ status: 'changed', knownTypes: ['ssh-ed25519'] });
  });

  it('known hosts - the algorithms of the key types known for a host are offered first; none known, ssh2 keeps its own order', () => {
    const known = keysFor('10.0.0.5 ssh-rsa AAAA\n@revoked 10.0.0.5 ssh-ed25519 BBBB\n', '10.0.0.5', 22);
    expect(hostKeyAlgorithms(known)).toEqual(['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa', 'ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521']);
    expect(hostKeyAlgorithms([])).toEqual([]);
  });
});

describe('install inventory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-inventory-'));

  it('install inventory - defaults apply to every host; labels merge flags < defaults < host; identity paths are relative to the file', () => {
    const file = join(dir, 'hosts.yaml');
    const hosts = parseInventory(
      `defaults:\n  user: deploy\n  identity: keys/drover\n  labels: { site: ams }\nhosts:\n  - host: 10.0.0.5\n    name: web-1\n    labels: { role: web }\n  - { host: 10.0.0.6, port: 2222, user: root, identity: /k/other }\n`,
      file,
      { env: 'prod', site: 'x' },
    );
    expect(hosts).toEqual([
      { target: { user: 'deploy', host: '10.0.0.5', port: 22 }, identity: join(dir, 'keys/drover'), name: 'web-1', labels: { env: 'prod', site: 'ams', role: 'web' } },
      { target: { user: 'root', host: '10.0.0.6', port: 2222 }, identity: '/k/other', labels: { env: 'prod', site: 'ams' } },
    ]);
    expect(parseInventory('- host: a\n- host: b\n', file, {}, 'me').map((h) => h.target)).toEqual([
      { user: 'me', host: 'a', port: 22 },
      { user: 'me', host: 'b', port: 22 },
    ]);
  });

  it('install inventory - problems are reported with path, line and column; duplicate names are refused', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, '');
    let err: unknown;
    try {
      parseInventory('hosts:\n  - host: a\n    port: seventy\n  - hots: b\n', file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as InvalidInputError).message).toBe(`${file}: 3 problems in the inventory`);
    expect((err as InvalidInputError).problems.map((p) => `${p.path}@${p.line}:${p.column}`).sort()).toEqual(['hosts[0].port@3:11', 'hosts[1].host@4:5', 'hosts[1]@4:5']);
    expect(() => parseInventory('- { host: a, name: x }\n- { host: b, name: x }\n', file)).toThrow('hosts[0] and hosts[1] have the same name x');
  });
});
