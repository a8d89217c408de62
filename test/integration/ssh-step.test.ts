/**
 * ssh steps against a real OpenSSH server acting as a network device: sshd
 * runs test/helpers/device-cli.sh for every session (a prompt, a few show
 * commands, configure mode, "% Invalid input detected" with exit 0), and the
 * script logs each session and command with a timestamp. Devices are
 * registered through the CLI; a proxy agent (label proxy=lab) drives them.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DroverClient, NoMatchingAgentError, type LogLine, type Run } from '../../sdk/index.js';
import { cli, startAgent, startServer, tempDir, waitFor, type ServerProc } from '../helpers/cluster.js';
import { keygen, startDeviceSshd, type DeviceSshd } from '../helpers/sshd.js';

let dev: DeviceSshd;
let server: ServerProc;
let client: DroverClient;
const dir = tempDir('drover-ssh-step-');
const PASSPHRASE = 'hunter2-correct-horse';
let wrongKey: string;
let encKey: string;
let emptyKnownHosts: string;

/** `drover device add` through the CLI, failing the test on a non-zero exit. */
async function addDevice(name: string, args: string[]) {
  const r = await cli(['device', 'add', name, '--host', '127.0.0.1', '--port', String(dev.port), '--user', dev.user, ...args, '--server', server.address], server.env);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r;
}

beforeAll(async () => {
  dev = await startDeviceSshd('switch1');
  // A key the device refuses, and a passphrase-protected one it accepts (the passphrase is a secret to mask).
  wrongKey = keygen(join(dir, 'wrong_key'), 'not-authorized');
  encKey = join(dir, 'enc_key');
  const gen = spawnSync('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', PASSPHRASE, '-C', 'encrypted', '-f', encKey], { encoding: 'utf8' });
  expect(gen.status, gen.stderr).toBe(0);
  writeFileSync(`${encKey}.passphrase`, `${PASSPHRASE}\n`);
  appendFileSync(join(dev.dir, 'authorized_keys'), readFileSync(`${encKey}.pub`));
  // The device holds the same string in its configuration and prints it in `show running-config`.
  writeFileSync(dev.secretFile, PASSPHRASE);
  emptyKnownHosts = join(dir, 'empty_known_hosts');
  writeFileSync(emptyKnownHosts, '');

  server = await startServer();
  const creds = ['--credential', `lab-key=${dev.identity}`, '--credential', `lab-enc=${encKey}`, '--credential', `wrong-key=${wrongKey}`];
  startAgent(server, 'proxy-1', { proxy: 'lab' }, undefined, [...creds, '--ssh-known-hosts', dev.knownHosts]);
  startAgent(server, 'proxy-2', { proxy: 'lab2' }, undefined, [...creds, '--ssh-known-hosts', emptyKnownHosts]);
  startAgent(server, 'plain-1', { role: 'web' });
  client = new DroverClient(server.clientOptions);
  await waitFor(async () => (await client.fleet.list()).filter((a) => a.state === 'connected').length === 3, 30_000, () => 'three agents');

  await addDevice('switch1', ['--credential', 'lab-key', '--network', 'lab', '--label', 'role=access', '--label', 'site=ams']);
  await addDevice('switch1-b', ['--credential', 'lab-key', '--network', 'lab', '--label', 'role=access', '--label', 'site=fra']);
  await addDevice('switch1-enc', ['--credential', 'lab-enc', '--network', 'lab']);
  await addDevice('switch1-wrong', ['--credential', 'wrong-key', '--network', 'lab']);
  await addDevice('switch1-nocred', ['--credential', 'nobody', '--network', 'lab']);
  await addDevice('switch1-lab2', ['--credential', 'lab-key', '--network', 'lab2']);
  await addDevice('switch1-far', ['--credential', 'lab-key', '--network', 'nowhere']);
}, 90_000);

afterAll(() => client?.close());

let n = 0;
function workflowFile(yaml: string): string {
  const file = join(dir, `wf-${++n}.yaml`);
  writeFileSync(file, yaml);
  return file;
}

/** Runs a workflow to its end; returns the run, its log lines and what the device logged meanwhile. */
async function run(yaml: string): Promise<{ run: Run; logs: LogLine[]; device: DeviceEvent[] }> {
  const before = readFileSync(dev.deviceLog, 'utf8').length;
  const handle = await client.runs.launch(workflowFile(yaml));
  const r = await handle.wait();
  const logs: LogLine[] = [];
  for await (const l of client.logs(r.id)) logs.push(l);
  // Sessions end when the agent has finished its part of the run: wait for the device to see that.
  const device = await waitFor(
    () => {
      const events = deviceEvents(readFileSync(dev.deviceLog, 'utf8').slice(before));
      const open = events.filter((e) => e.event === 'session-start').length - events.filter((e) => e.event === 'session-end').length;
      return open === 0 ? events : undefined;
    },
    10_000,
    () => `the device's sessions to end:\n${readFileSync(dev.deviceLog, 'utf8').slice(before)}`,
  );
  return { run: r, logs, device };
}

interface DeviceEvent {
  t: number;
  pid: string;
  event: string;
  arg: string;
}

function deviceEvents(text: string): DeviceEvent[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [t, pid, event, ...rest] = line.split(' ');
      return { t: Number(t), pid, event, arg: rest.join(' ') };
    });
}

const step = (r: Run, id: string) => r.steps.find((s) => s.id === id)!;
const textOf = (logs: LogLine[], stepId: string) => logs.filter((l) => l.stepId === stepId).map((l) => l.text);

describe('ssh steps against a real sshd acting as a device', () => {
  it('ssh step - runs commands in one session and captures each output in logs (prefixed with the command) and outputs', async () => {
    const { run: r, logs, device } = await run(`name: ssh-show
steps:
  - id: show
    ssh:
      device: switch1
      commands:
        - terminal length 0
        - show version
        - { command: show interfaces, name: interfaces }
`);
    expect(r.status).toBe('succeeded');
    const s = step(r, 'show');
    expect(s.kind).toBe('ssh');
    expect(s.agent).toBe('proxy-1');
    expect(s.outputs.device).toBe('switch1');
    expect(s.outputs.out_0).toBe('');
    expect(s.outputs.out_1).toBe('Drover Test Switch Software, Version 1.0(1)\nswitch1 uptime is 5 minutes\nSystem image file is "flash:drover-test.bin"');
    expect(s.outputs.interfaces).toBe(
      'Ethernet1 is up, line protocol is up\n  0 input errors, 0 CRC\nEthernet2 is administratively down, line protocol is down',
    );
    expect(textOf(logs, 'show')).toEqual([
      `connected to device switch1 (${dev.user}@127.0.0.1:${dev.port}) with credential lab-key`,
      '[terminal length 0] (no output)',
      '[show version] Drover Test Switch Software, Version 1.0(1)',
      '[show version] switch1 uptime is 5 minutes',
      '[show version] System image file is "flash:drover-test.bin"',
      '[show interfaces] Ethernet1 is up, line protocol is up',
      '[show interfaces]   0 input errors, 0 CRC',
      '[show interfaces] Ethernet2 is administratively down, line protocol is down',
    ]);
    expect(device.filter((e) => e.event === 'session-start').map((e) => e.arg)).toEqual(['shell']);
    expect(device.filter((e) => e.event === 'cmd-start').map((e) => e.arg)).toEqual(['terminal length 0', 'show version', 'show interfaces']);
  });

  it('ssh step - an unknown command fails the step through the error pattern and stops the commands after it', async () => {
    const { run: r, logs, device } = await run(`name: ssh-bad-command
steps:
  - id: show
    ssh:
      device: switch1
      commands: [show version, show bogus, show interfaces]
`);
    expect(r.status).toBe('failed');
    const s = step(r, 'show');
    expect(s.status).toBe('failed');
    expect(s.exitCode).toBe(1);
    expect(s.message).toBe(`command 2 "show bogus" on device switch1 failed: its output matched errorPattern: % Invalid input detected at '^' marker.; 1 later command was not run`);
    expect(s.outputs.out_1).toBe("% Invalid input detected at '^' marker.");
    expect(textOf(logs, 'show')).toContain("[show bogus] % Invalid input detected at '^' marker.");
    expect(device.filter((e) => e.event === 'cmd-start').map((e) => e.arg)).toEqual(['show version', 'show bogus']);
  });

  it('ssh step - steps of one run to the same device reuse one SSH connection, configuration mode included', async () => {
    const { run: r, logs, device } = await run(`name: ssh-reuse
steps:
  - id: enter
    ssh: { device: switch1, commands: [configure terminal] }
  - id: configure
    needs: [enter]
    ssh: { device: switch1, commands: [interface Ethernet1, description uplink to core, end] }
  - id: check
    needs: [configure]
    ssh: { device: switch1, commands: [show version] }
`);
    expect(r.status).toBe('succeeded');
    // "interface" is only valid in configuration mode: the second step ran in the first one's session.
    expect(step(r, 'configure').status).toBe('succeeded');
    expect(textOf(logs, 'configure')[0]).toBe(`reusing the session to device switch1 (${dev.user}@127.0.0.1:${dev.port})`);
    expect(textOf(logs, 'check')[0]).toBe(`reusing the session to device switch1 (${dev.user}@127.0.0.1:${dev.port})`);
    expect(device.filter((e) => e.event === 'session-start')).toHaveLength(1);
    expect(new Set(device.map((e) => e.pid)).size).toBe(1);
  });

  it('ssh step - two parallel steps to one device never overlap (per-device limit of 1)', async () => {
    const { run: r, logs, device } = await run(`name: ssh-parallel
steps:
  - id: left
    ssh: { device: switch1, commands: [show tech-support, show version] }
  - id: right
    ssh: { device: switch1, commands: [show tech-support, show interfaces] }
`);
    expect(r.status).toBe('succeeded');
    const cmds = device.filter((e) => e.event === 'cmd-start' || e.event === 'cmd-end');
    // Strictly one command at a time...
    for (let i = 0; i < cmds.length; i += 2) {
      expect(cmds[i].event).toBe('cmd-start');
      expect(cmds[i + 1]).toMatchObject({ event: 'cmd-end', arg: cmds[i].arg });
      if (i > 0) expect(cmds[i].t).toBeGreaterThanOrEqual(cmds[i - 1].t);
    }
    // ...and each step's commands together: one step finished before the other began.
    const order = cmds.filter((e) => e.event === 'cmd-start').map((e) => e.arg);
    expect(order).toHaveLength(4);
    expect([order[0], order[2]]).toEqual(['show tech-support', 'show tech-support']);
    expect([order[1], order[3]].sort()).toEqual(['show interfaces', 'show version']);
    const waited = [...textOf(logs, 'left'), ...textOf(logs, 'right')].filter((t) => t.startsWith('waiting for device'));
    expect(waited).toEqual(['waiting for device switch1: 1 step using it, 1 allowed at a time']);
    const [first, second] = ['left', 'right'].map((id) => step(r, id)).sort((a, b) => a.startedAt - b.startedAt);
    expect(second.endedAt - first.endedAt).toBeGreaterThanOrEqual(1000);
  });

  it('ssh step - two runs at once to one device take turns, each in its own session', async () => {
    const before = readFileSync(dev.deviceLog, 'utf8').length;
    const yaml = (name: string, cmd: string) => `name: ${name}\nsteps:\n  - id: s\n    ssh: { device: switch1, commands: [show tech-support, ${cmd}] }\n`;
    const handles = await Promise.all([client.runs.launch(workflowFile(yaml('ssh-turn-a', 'show version'))), client.runs.launch(workflowFile(yaml('ssh-turn-b', 'show interfaces')))]);
    const runs = await Promise.all(handles.map((h) => h.wait()));
    expect(runs.map((r) => r.status)).toEqual(['succeeded', 'succeeded']);
    const events = await waitFor(
      () => {
        const ev = deviceEvents(readFileSync(dev.deviceLog, 'utf8').slice(before));
        return ev.filter((e) => e.event === 'session-end').length === 2 ? ev : undefined;
      },
      10_000,
      () => 'both sessions to end',
    );
    expect(events.filter((e) => e.event === 'session-start')).toHaveLength(2);
    // All of one session's commands, then all of the other's.
    const pids = events.filter((e) => e.event === 'cmd-start').map((e) => e.pid);
    expect(pids).toEqual([pids[0], pids[0], pids[2], pids[2]]);
    expect(pids[0]).not.toBe(pids[2]);
    const cmds = events.filter((e) => e.event.startsWith('cmd-'));
    for (let i = 1; i < cmds.length; i++) expect(cmds[i].t).toBeGreaterThanOrEqual(cmds[i - 1].t);
    expect(cmds.map((e) => e.event)).toEqual(['cmd-start', 'cmd-end', 'cmd-start', 'cmd-end', 'cmd-start', 'cmd-end', 'cmd-start', 'cmd-end']);
  });

  it('ssh step - target labels with strategy all run one instance per matching device', async () => {
    const { run: r } = await run(`name: ssh-fanout
steps:
  - id: inventory
    target: { labels: { role: access }, strategy: all }
    ssh: { commands: [show version] }
  - id: report
    needs: [inventory]
    target: { labels: { role: web } }
    run: echo done
`);
    expect(r.status).toBe('succeeded');
    expect(r.steps.map((s) => [s.id, s.kind, s.agent, s.status])).toEqual([
      ['inventory', 'group', '', 'succeeded'],
      ['inventory[switch1]', 'ssh', 'proxy-1', 'succeeded'],
      ['inventory[switch1-b]', 'ssh', 'proxy-1', 'succeeded'],
      ['report', 'run', 'plain-1', 'succeeded'],
    ]);
    expect(step(r, 'inventory[switch1-b]').outputs.device).toBe('switch1-b');
  });

  it('ssh step - exec mode runs one exec per command and fails on a non-zero exit status', async () => {
    const { run: r, logs, device } = await run(`name: ssh-exec
steps:
  - id: exec
    ssh:
      device: switch1
      mode: exec
      errorPattern: ""
      commands: [show version, fail, show interfaces]
`);
    expect(r.status).toBe('failed');
    const s = step(r, 'exec');
    expect(s.exitCode).toBe(3);
    expect(s.message).toBe('command 2 "fail" on device switch1 exited with status 3; 1 later command was not run');
    expect(s.outputs.out_0).toContain('Version 1.0(1)');
    expect(textOf(logs, 'exec')).toContain('[fail] % Error: the operation failed');
    expect(device.filter((e) => e.event === 'session-start').map((e) => e.arg)).toEqual(['exec', 'exec']);
  });

  it('ssh step - a command that gives no prompt within its timeout fails the step and closes the session', async () => {
    const { run: r } = await run(`name: ssh-timeout
steps:
  - id: hang
    ssh:
      device: switch1
      commands: [show version, { command: show logging follow, timeout: 1s }]
`);
    const s = step(r, 'hang');
    expect(s.status).toBe('failed');
    expect(s.exitCode).toBe(124);
    expect(s.message).toBe('no prompt from device switch1 within 1s after "show logging follow"; the session was closed');
  });

  it('ssh step - secrets of the credential (a key passphrase) are masked in logs and outputs', async () => {
    const { run: r, logs } = await run(`name: ssh-mask
steps:
  - id: config
    ssh: { device: switch1-enc, commands: [show running-config] }
`);
    expect(r.status).toBe('succeeded');
    expect(step(r, 'config').outputs.out_0).toBe('hostname switch1\nusername admin secret ***\nend');
    expect(textOf(logs, 'config')).toContain('[show running-config] username admin secret ***');
    const everything = JSON.stringify({ r, logs }) + (await cli(['status', r.id, '-o', 'json', '--server', server.address], server.env)).stdout;
    expect(everything).not.toContain(PASSPHRASE);
  });

  it('ssh step - a credential stored as a control-plane secret (key and passphrase) is used though the proxy has no file for it, and masked', async () => {
    await client.secrets.set('vault-enc', readFileSync(encKey, 'utf8'));
    await client.secrets.set('vault-enc.passphrase', PASSPHRASE);
    await addDevice('switch1-vault', ['--credential', 'vault-enc', '--network', 'lab']);
    const { run: r, logs } = await run(`name: ssh-vault
steps:
  - id: config
    ssh: { device: switch1-vault, commands: [show running-config] }
`);
    expect(r.status, r.message).toBe('succeeded');
    expect(textOf(logs, 'config')).toContain('[show running-config] username admin secret ***');
    expect(JSON.stringify({ r, logs })).not.toContain(PASSPHRASE);
    const reads = (await client.audit.list({ action: 'secret.read' })).filter((a) => a.detail.run === r.id).map((a) => a.target);
    expect(reads.sort()).toEqual(['vault-enc', 'vault-enc.passphrase']);
  });

  it('ssh step - a credential the device refuses fails with the credential, user and device named', async () => {
    const { run: r } = await run(`name: ssh-wrong-key
steps:
  - id: show
    ssh: { device: switch1-wrong, commands: [show version] }
`);
    const s = step(r, 'show');
    expect(s.status).toBe('failed');
    expect(s.exitCode).toBe(255);
    expect(s.message).toBe(
      `device switch1-wrong (${dev.user}@127.0.0.1:${dev.port}) did not accept credential "wrong-key" (the private key in ${wrongKey}); ` +
        "check the user and that the key's public half is authorized on the device",
    );
  });

  it('ssh step - a credential reference the proxy agent does not know says how to provide it', async () => {
    const { run: r } = await run(`name: ssh-no-cred
steps:
  - id: show
    ssh: { device: switch1-nocred, commands: [show version] }
`);
    const s = step(r, 'show');
    expect(s.status).toBe('failed');
    expect(s.message).toMatch(
      /^credential "nobody" is not known on agent proxy-1: start it with --credential nobody=\/path\/to\/key-or-password-file, or put the file at \/\S+\/credentials\/nobody$/,
    );
  });

  it('ssh step - an unknown host key fails before any credential is sent, with the fingerprint and the fix', async () => {
    const { run: r } = await run(`name: ssh-unknown-host
steps:
  - id: show
    ssh: { device: switch1-lab2, commands: [show version] }
`);
    const s = step(r, 'show');
    expect(s.agent).toBe('proxy-2');
    expect(s.status).toBe('failed');
    expect(s.exitCode).toBe(255);
    expect(s.message).toMatch(
      new RegExp(
        `^the host key of device switch1-lab2 \\(127\\.0\\.0\\.1:${dev.port}\\) is not in ${emptyKnownHosts} \\(it presented ssh-ed25519 SHA256:\\S+\\); ` +
          `check that fingerprint with the device's owner, then add it on this agent \\(ssh-keyscan -p ${dev.port} 127\\.0\\.0\\.1 >> ${emptyKnownHosts}\\) ` +
          'or start the agent with --ssh-accept-new-host-keys; no credential was sent$',
      ),
    );
    expect(readFileSync(emptyKnownHosts, 'utf8')).toBe('');
  });

  it('device - a device whose network has no proxy agent is refused at submit, nothing started', async () => {
    const runsBefore = (await client.runs.list()).length;
    const err = await client.runs.launch(workflowFile(`name: ssh-no-proxy
steps:
  - id: show
    ssh: { device: switch1-far, commands: [show version] }
`)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoMatchingAgentError);
    expect((err as Error).message).toBe(
      'step "show".ssh: no proxy agent for network "nowhere" (device switch1-far): start an agent that can reach it with --label proxy=nowhere; ' +
        'proxy agents in the fleet: proxy-1 (proxy=lab) proxy-2 (proxy=lab2)',
    );
    expect((await client.runs.list()).length).toBe(runsBefore);
  });

  it('device - an unknown device is a compile error with a did-you-mean', async () => {
    const r = await cli(['run', workflowFile(`name: ssh-unknown-device
steps:
  - id: show
    ssh: { device: swtich1, commands: [show version] }
`), '--server', server.address], server.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no device named "swtich1" in the inventory (did you mean "switch1"?)');
  });

  it('device - the CLI lists devices with their proxies, refuses a duplicate and removes one', async () => {
    const list = await cli(['device', 'list', '-o', 'json', '--server', server.address], server.env);
    const devices = JSON.parse(list.stdout) as { name: string; network: string; proxies: string[]; credential: string }[];
    expect(devices.find((d) => d.name === 'switch1')).toMatchObject({ network: 'lab', proxies: ['proxy-1'], credential: 'lab-key' });
    expect(devices.find((d) => d.name === 'switch1-far')).toMatchObject({ network: 'nowhere', proxies: [] });
    const table = (await cli(['device', 'list', '-l', 'role=access', '--server', server.address], server.env)).stdout;
    expect(table.split('\n')[0]).toMatch(/^NAME\s+ADDRESS\s+USER\s+CREDENTIAL\s+NETWORK\s+SESSIONS\s+LABELS\s+PROXIES$/);
    expect(table).toMatch(new RegExp(`switch1\\s+127\\.0\\.0\\.1:${dev.port}\\s+${dev.user}\\s+lab-key\\s+lab\\s+1\\s+role=access,site=ams\\s+proxy-1`));

    const dup = await cli(['device', 'add', 'switch1', '--host', '10.0.0.9', '--user', 'admin', '--credential', 'lab-key', '--server', server.address], server.env);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain(`error: a device named "switch1" is already registered (${dev.user}@127.0.0.1:${dev.port}, network lab)`);

    const bad = await cli(['device', 'add', 'sw-x', '--host', '10.0.0.9', '--user', 'admin', '--credential', '/etc/secret', '--server', server.address], server.env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('error: --credential "/etc/secret" is not a credential reference: use a name');

    await addDevice('temp-1', ['--credential', 'lab-key', '--network', 'lab']);
    const rm = await cli(['device', 'remove', 'temp-1', '--server', server.address], server.env);
    expect(rm.stdout).toBe('device temp-1 removed\n');
    const again = await cli(['device', 'remove', 'temp-1', '--server', server.address], server.env);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('error: no device named "temp-1" in the inventory');
  });
});
