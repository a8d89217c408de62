import { describe, expect, it } from 'vitest';
import { compilePattern } from '../../common/pattern.js';
import { compile } from '../../common/workflow/compiler/compile.js';
import { DEFAULT_ERROR_PATTERN, DEFAULT_PROMPT } from '../../common/workflow/compiler/schema.js';
import type { FleetDevice } from '../../common/workflow/model/target.js';
import { deviceKey, place } from '../../common/workflow/placement/placement.js';
import { fleetAgent } from '../helpers/fleet-agent.js';

const device = (name: string, labels: Record<string, string> = {}, extra: Partial<FleetDevice> = {}): FleetDevice => ({
  name,
  host: `${name}.lab.example`,
  port: 22,
  user: 'admin',
  credential: 'lab-admin',
  network: 'lab',
  labels,
  maxSessions: 1,
  ...extra,
});

const agent = fleetAgent;

const INVENTORY = [
  device('core-1', { role: 'core', site: 'ams' }, { host: '10.0.0.1', port: 2222, maxSessions: 2 }),
  device('access-1', { role: 'access', site: 'ams' }),
  device('access-2', { role: 'access', site: 'fra' }, { network: 'fra' }),
];

const compileWith = (source: string, devices = INVENTORY, mode: 'run' | 'validate' = 'run') => compile({ source, params: {}, devices, mode });
const ok = (source: string, devices = INVENTORY) => {
  const res = compileWith(source, devices);
  expect(res.problems.filter((p) => p.severity === 'error')).toEqual([]);
  return res.plan!;
};
const errors = (source: string, devices = INVENTORY) =>
  compileWith(source, devices)
    .problems.filter((p) => p.severity === 'error')
    .map((p) => `${p.path}: ${p.message}`);

describe('compiler - ssh steps', () => {
  it('compiler - an ssh step on a registered device carries its resolved connection and the defaults', () => {
    const plan = ok(`name: x
steps:
  - id: show
    ssh:
      device: core-1
      commands:
        - show version
        - { command: show interfaces, name: ifaces, timeout: 5s }
`);
    const s = plan.steps[0];
    expect(s.kind).toBe('ssh');
    expect(s.target.device).toBe('core-1');
    expect(s.ssh).toEqual({
      device: 'core-1',
      host: '10.0.0.1',
      port: 2222,
      user: 'admin',
      credential: 'lab-admin',
      network: 'lab',
      commands: [
        { command: 'show version', name: '', timeoutMs: 0 },
        { command: 'show interfaces', name: 'ifaces', timeoutMs: 5000 },
      ],
      errorPattern: DEFAULT_ERROR_PATTERN,
      mode: 'shell',
      prompt: DEFAULT_PROMPT,
      commandTimeoutMs: 30_000,
      maxSessions: 2,
    });
  });

  it('compiler - the default error pattern catches common device CLI errors and not normal output', () => {
    const re = compilePattern(DEFAULT_ERROR_PATTERN, 'ssh.errorPattern');
    for (const line of ["% Invalid input detected at '^' marker.", '% Incomplete command.', '% Ambiguous command:  "sh i"', 'Error: Unrecognized command found at \'^\' position.', 'syntax error, expecting <command>.', 'unknown command.']) {
      expect(re.test(line), line).toBe(true);
    }
    for (const line of ['  0 input errors, 0 CRC', 'Ethernet1 is up, line protocol is up', 'Last error: none']) expect(re.test(line), line).toBe(false);
  });

  it('compiler - the default prompt matches device prompts and not output lines', () => {
    const re = compilePattern(DEFAULT_PROMPT, 'ssh.prompt');
    for (const p of ['switch1#', 'switch1(config-if)#', 'admin@mx1> ', '<HUAWEI>', '[HUAWEI]', '[admin@MikroTik] >', 'user@host:~$ ']) expect(re.test(p), p).toBe(true);
    for (const line of ['Ethernet1 is up, line protocol is up', 'Total: 5 %s', '']) expect(re.test(line), line).toBe(false);
  });

  it('compiler - target labels with strategy all make one instance per matching device, sorted by name', () => {
    const plan = ok(`name: x
steps:
  - id: backup
    target: { labels: { site: ams }, strategy: all, maxParallel: 1 }
    ssh: { commands: [show running-config] }
`);
    expect(plan.steps.map((s) => [s.id, s.parent, s.ssh!.device, s.ssh!.host, s.agent])).toEqual([
      ['backup[access-1]', 'backup', 'access-1', 'access-1.lab.example', ''],
      ['backup[core-1]', 'backup', 'core-1', '10.0.0.1', ''],
    ]);
    expect(plan.groups).toEqual([expect.objectContaining({ id: 'backup', over: 'devices', instances: ['backup[access-1]', 'backup[core-1]'], maxParallel: 1 })]);
  });

  it('compiler - a label selector with strategy one must match exactly one device', () => {
    expect(errors(`name: x\nsteps:\n  - { id: a, target: { labels: { role: access } }, ssh: { commands: [show version] } }\n`)).toEqual([
      'steps[0].target: role=access matches 2 devices (access-1, access-2); add strategy: all to run on each, or narrow the selector',
    ]);
    expect(errors(`name: x\nsteps:\n  - { id: a, target: { labels: { role: spine } }, ssh: { commands: [show version] } }\n`)).toEqual([
      'steps[0].target: no device in the inventory matches role=spine; device labels: role=access role=core site=ams site=fra',
    ]);
    const plan = ok(`name: x\nsteps:\n  - { id: a, target: { labels: { role: access, site: fra } }, ssh: { commands: [show version] } }\n`);
    expect(plan.steps[0].ssh!.device).toBe('access-2');
    expect(plan.steps[0].ssh!.network).toBe('fra');
  });

  it('compiler - an unknown device is an error when running and a warning when validating', () => {
    const src = `name: x\nsteps:\n  - { id: a, ssh: { device: acess-1, commands: [show version] } }\n`;
    const msg =
      'no device named "acess-1" in the inventory (did you mean "access-1"?); register it with `drover device add acess-1 --host HOST --user USER --credential NAME` (see `drover device list`)';
    expect(errors(src)).toEqual([`steps[0].ssh.device: ${msg}`]);
    const validated = compileWith(src, INVENTORY, 'validate').problems;
    expect(validated).toEqual([expect.objectContaining({ path: 'steps[0].ssh.device', severity: 'warning', message: msg })]);
  });

  it('compiler - target.device names a device like ssh.device; naming it twice is an error', () => {
    expect(ok(`name: x\nsteps:\n  - { id: a, target: { device: core-1 }, ssh: { commands: [show version] } }\n`).steps[0].ssh!.host).toBe('10.0.0.1');
    expect(errors(`name: x\nsteps:\n  - { id: a, target: { device: core-1 }, ssh: { device: core-1, commands: [show version] } }\n`)).toEqual([
      'steps[0].ssh.device: the device is named twice (ssh.device and target.device); keep one',
    ]);
  });

  it('compiler - an inline host needs user and credential and takes its network', () => {
    const plan = ok(`name: x
steps:
  - id: a
    ssh: { host: 192.0.2.7, port: 2200, user: ops, credential: ops-key, network: dc2, commands: [show version] }
`);
    expect(plan.steps[0].ssh).toMatchObject({ device: '', host: '192.0.2.7', port: 2200, user: 'ops', credential: 'ops-key', network: 'dc2', maxSessions: 1 });
    expect(errors(`name: x\nsteps:\n  - { id: a, ssh: { host: 192.0.2.7, commands: [show version] } }\n`)).toEqual([
      'steps[0].ssh: an inline ssh.host needs ssh.user (or register the device with `drover device add` and use ssh.device)',
      'steps[0].ssh: an inline ssh.host needs ssh.credential (or register the device with `drover device add` and use ssh.device)',
    ]);
  });

  it("compiler - a registered device's connection fields cannot be overridden in the workflow", () => {
    expect(errors(`name: x\nsteps:\n  - { id: a, ssh: { device: core-1, user: root, commands: [show version] } }\n`)).toEqual([
      "steps[0].ssh.user: ssh.user is only for an inline ssh.host; a registered device's user comes from the inventory (change it with `drover device add NAME --replace ...`)",
    ]);
  });

  it('compiler - an ssh step without a device, with target.agent, or with two device sources is an error', () => {
    expect(errors(`name: x\nsteps:\n  - { id: a, ssh: { commands: [show version] } }\n`)).toEqual([
      'steps[0].ssh: an ssh step needs a device: ssh.device: NAME (see `drover device list`), target.labels to select registered devices, or an inline ssh.host with user and credential',
    ]);
    expect(errors(`name: x\nsteps:\n  - { id: a, target: { agent: proxy-1 }, ssh: { device: core-1, commands: [show version] } }\n`)).toEqual([
      "steps[0].target.agent: target.agent does not apply to ssh steps: they run on a proxy agent for the device's network (an agent labelled proxy=<network>)",
    ]);
    expect(
      errors(`name: x\nsteps:\n  - { id: a, target: { labels: { role: core } }, ssh: { host: h, user: u, credential: c, commands: [show version] } }\n`),
    ).toEqual(['steps[0].ssh.host: an ssh step drives a registered device (ssh.device, target.device or target.labels) or an inline ssh.host, not both']);
  });

  it('compiler - target.device on a step that is not ssh is an error', () => {
    expect(errors(`name: x\nsteps:\n  - { id: a, run: "true", target: { device: core-1 } }\n`)).toEqual([
      'steps[0].target.device: target.device selects a network device, which only ssh steps drive; use target.agent or labels to pick agents',
    ]);
  });

  it('compiler - bad patterns, line breaks in a command and duplicate output names are errors', () => {
    expect(
      errors(`name: x
steps:
  - id: a
    ssh:
      device: core-1
      errorPattern: "(unclosed"
      commands:
        - "show version\\nreload"
        - { command: show clock, name: out_0 }
`),
    ).toEqual([
      'steps[0].ssh.errorPattern: ssh.errorPattern /(unclosed/ cannot be used: missing closing ): `(unclosed`; correct it (patterns use RE2 syntax: docs/security.md#patterns)',
      'steps[0].ssh.commands[0]: a command may not contain a line break: give each command its own list item',
      'steps[0].ssh.commands[1]: output name "out_0" is already used by ssh.commands[0]; output names must be unique',
    ]);
  });

  it('compiler - an ssh prompt or errorPattern RE2 refuses is an error at its field, with the reason', () => {
    const linear = 'which RE2 does not support because it cannot be matched in linear time';
    expect(
      errors(`name: x
steps:
  - id: a
    ssh:
      device: core-1
      prompt: '(?<=\\n)switch1#$'
      errorPattern: '^(%|Error)\\1'
      commands: [show version]
`),
    ).toEqual([
      `steps[0].ssh.errorPattern: ssh.errorPattern /^(%|Error)\\1/ cannot be used: it uses a backreference (\\1, \\k<name>), ${linear} (RE2: invalid escape sequence: \`\\1\`); spell out what the group matches again, e.g. /aa|bb/ for /(a|b)\\1/ (patterns use RE2 syntax: docs/security.md#patterns)`,
      `steps[0].ssh.prompt: ssh.prompt /(?<=\\n)switch1#$/ cannot be used: it uses lookbehind (?<=…) or (?<!…), ${linear} (RE2: invalid named capture: \`(?<=\\n)switch1#$\`); match the text itself instead, e.g. /v\\d/ for /(?<=v)\\d/ (patterns use RE2 syntax: docs/security.md#patterns)`,
    ]);
  });

  it('compiler - an ssh prompt in RE2 syntax (named group, inline flag) is accepted and kept as written', () => {
    const plan = ok(`name: x\nsteps:\n  - { id: a, ssh: { device: core-1, prompt: '(?i)^(?P<host>[a-z0-9-]+)[>#] ?$', commands: [show version] } }\n`);
    expect(plan.steps[0].ssh!.prompt).toBe('(?i)^(?P<host>[a-z0-9-]+)[>#] ?$');
    expect(compilePattern(plan.steps[0].ssh!.prompt, 'ssh.prompt').test('SWITCH1#')).toBe(true);
  });

  it('compiler - an unknown field in an ssh command is reported with the allowed ones', () => {
    expect(errors(`name: x\nsteps:\n  - { id: a, ssh: { device: core-1, commands: [{ command: show clock, timout: 5s }] } }\n`)).toEqual([
      'steps[0].ssh.commands[0].timout: unknown field "timout" (did you mean "timeout"?); allowed here: command, name, timeout',
    ]);
  });

  it('compiler - commands may hold expressions (data for the device), checked like any template', () => {
    const plan = ok(`name: x
params: { ports: { type: list, default: [Ethernet1, Ethernet2] } }
steps:
  - id: a
    forEach: \${{ params.ports }}
    ssh: { device: core-1, commands: ["show interface \${{ item }}"] }
`);
    expect(plan.steps.map((s) => [s.id, s.ssh!.commands[0].command])).toEqual([
      ['a[0]', 'show interface ${{ item }}'],
      ['a[1]', 'show interface ${{ item }}'],
    ]);
    expect(errors(`name: x\nsteps:\n  - { id: a, ssh: { device: core-1, commands: ["show interface \${{ params.port }}"] } }\n`)[0]).toMatch(
      /^steps\[0\]\.ssh\.commands\[0\]: unknown param "port"/,
    );
  });

  it("compiler - the plan hash follows the device's inventory entry", () => {
    const src = `name: x\nsteps:\n  - { id: a, ssh: { device: core-1, commands: [show version] } }\n`;
    const before = ok(src).hash;
    const moved = ok(src, INVENTORY.map((d) => (d.name === 'core-1' ? { ...d, host: '10.0.0.99' } : d))).hash;
    expect(moved).not.toBe(before);
    expect(ok(src).hash).toBe(before);
  });

  it('compiler - an approval step with an empty approvers list is refused', () => {
    expect(errors(`name: x\nsteps:\n  - { id: a, approval: { approvers: [] } }\n`)).toEqual([
      'steps[0].approval.approvers: an approval step needs at least one approver: a role (viewer, operator, admin) or a token name',
    ]);
  });
});

describe('placement - ssh steps', () => {
  const plan = (source: string) => ok(source);

  it('placement - an ssh step runs on the least-loaded proxy agent for its network, never on other agents', () => {
    const p = plan(`name: x\nsteps:\n  - { id: a, ssh: { device: core-1, commands: [show version] } }\n`);
    const res = place(p.steps, [
      agent('web-1', { role: 'core' }),
      agent('proxy-busy', { proxy: 'lab' }, { runningSteps: 4 }),
      agent('proxy-idle', { 'proxy.lab': 'true', 'proxy.fra': 'true' }),
      agent('proxy-fra', { proxy: 'fra' }),
    ]);
    expect(res.problems).toEqual([]);
    expect(res.agents).toEqual({ a: 'proxy-idle' });
  });

  it('placement - a device with no proxy agent for its network is an error naming the label to add', () => {
    const p = plan(`name: x\nsteps:\n  - { id: a, ssh: { device: access-2, commands: [show version] } }\n`);
    expect(place(p.steps, [agent('proxy-1', { proxy: 'lab' }), agent('web-1', {})]).problems.map((x) => x.message)).toEqual([
      'no proxy agent for network "fra" (device access-2): start an agent that can reach it with --label proxy=fra; proxy agents in the fleet: proxy-1 (proxy=lab)',
    ]);
    expect(place(p.steps, [agent('proxy-fra', { proxy: 'fra' }, { draining: true })]).problems.map((x) => x.message)).toEqual([
      'every proxy agent for network "fra" (device access-2) is draining',
    ]);
  });

  it('placement - every step to one device goes through the same proxy agent, in this run and after other runs', () => {
    const p = plan(`name: x
steps:
  - { id: a, ssh: { device: core-1, commands: [show version] } }
  - { id: b, ssh: { device: core-1, commands: [show clock] } }
  - { id: c, ssh: { device: access-1, commands: [show clock] } }
`);
    const fleet = [agent('proxy-1', { proxy: 'lab' }), agent('proxy-2', { proxy: 'lab' })];
    const res = place(p.steps, fleet);
    expect(res.agents.a).toBe(res.agents.b);
    // Another device spreads to the other proxy by load.
    expect(res.agents.c).not.toBe(res.agents.a);
    // Unfinished steps of another run hold core-1 on proxy-2, though proxy-2 is busier.
    const busy = [agent('proxy-1', { proxy: 'lab' }), agent('proxy-2', { proxy: 'lab' }, { runningSteps: 5 })];
    const affinity = new Map([[deviceKey(p.steps[0].ssh!), new Set(['proxy-2'])]]);
    expect(place(p.steps, busy, affinity).agents).toEqual({ a: 'proxy-2', b: 'proxy-2', c: 'proxy-1' });
  });
});
