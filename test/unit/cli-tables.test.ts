/**
 * The main CLI tables as people see them (fleet, runs, status, workflows),
 * pinned by snapshots without colour and once with colour forced; when colour
 * is used; what json and yaml print.
 */
import { describe, expect, it } from 'vitest';
import { paintState, stripColour, useColour } from '../../sdk/cli/colour.js';
import { formatMachine, loadYaml, plainView, type View } from '../../sdk/cli/output.js';
import { fleetTable } from '../../sdk/cli/render/fleet.js';
import { paramsSummary, runHeader, runsTable, stepsTable } from '../../sdk/cli/render/runs.js';
import { workflowsTable } from '../../sdk/cli/render/workflows.js';
import type { Agent, RegisteredWorkflow, Run, Step, StepCounts } from '../../sdk/index.js';

const NOW = Date.UTC(2026, 11, 1, 12, 0, 0);
const ESC = '\u001b[';

const heartbeat = (cpu: number, mem: number, disk: number): Agent['heartbeat'] => ({
  at: NOW - 2_000, cpuPercent: cpu, memoryPercent: mem, memoryUsedBytes: 0, memoryTotalBytes: 0, diskPercent: disk, load: [0, 0, 0],
  netRxBytesPerSec: 0, netTxBytesPerSec: 0, runningSteps: 0, journalBytes: 0, journalUnacked: 0, journalDroppedLogBytes: 0, rejectedControlMessages: 0,
});
const agent = (name: string, over: Partial<Agent> = {}): Agent => ({
  name, state: 'connected', labels: { role: 'directory' }, lastSeen: NOW - 2_000, connectedSince: NOW - 3_600_000, draining: false,
  runningSteps: 0, transport: 'grpc', peer: '127.0.0.1:50123', heartbeat: heartbeat(12.4, 40.6, 71), ...over,
});
const AGENTS: Agent[] = [
  agent('dir-1', { runningSteps: 1 }),
  agent('assets-1', { labels: { role: 'assets', site: 'hq' }, draining: true }),
  agent('apps-1', { state: 'lost', transport: '', peer: '', heartbeat: undefined, labels: {}, lastSeen: NOW - 5 * 60_000, connectedSince: 0 }),
];

const counts = (over: Partial<StepCounts>): StepCounts => ({ total: 0, pending: 0, running: 0, succeeded: 0, failed: 0, skipped: 0, cancelled: 0, ...over });
const step = (id: string, over: Partial<Step> = {}): Step => ({
  id, parent: '', kind: 'run', agent: 'dir-1', status: 'succeeded', attempt: 1, exitCode: 0, startedAt: NOW - 60_000, endedAt: NOW - 58_800,
  cpuSeconds: 0.12, peakRssBytes: 12 * 1024 * 1024, outputs: {}, message: '', needs: [], isFinally: false, attempts: [], waiting: '', blocked: false, reusedFrom: '', ...over,
});
const run = (id: string, over: Partial<Run> = {}): Run => ({
  id, workflow: 'onboard-employee', workflowVersion: 2, status: 'succeeded', createdAt: NOW - 61_000, startedAt: NOW - 60_000, endedAt: NOW - 52_000,
  params: { username: 'alice', role: 'engineer' }, planHash: '3f9c2a1b', message: '', steps: [], stepCounts: counts({ total: 4, succeeded: 4 }), trigger: 'api', idempotencyKey: '', rerunOf: '', deduplicated: false, ...over,
});
const RUNS: Run[] = [
  run('r-261201-115930-7f3a2c1d', { status: 'running', endedAt: 0, stepCounts: counts({ total: 12, succeeded: 5, running: 2, pending: 5 }), params: { username: 'bob', role: 'sales', api_token: '(secret)' } }),
  run('r-261201-115800-0b1c2d3e', { status: 'failed', stepCounts: counts({ total: 4, succeeded: 2, failed: 1, skipped: 1 }), params: { username: 'carol-with-a-very-long-name', role: 'engineer', site: 'headquarters' } }),
  run('r-261201-115700-aa00bb11', { workflowVersion: 0, workflow: 'deploy', params: {} }),
];
const STATUS = run('r-261201-115800-0b1c2d3e', {
  status: 'failed',
  message: 'step grant-cloud-apps failed',
  steps: [
    step('create-account'),
    step('provision-laptop', { agent: 'assets-1', needs: ['create-account'], status: 'failed', exitCode: 3, message: 'exit 3' }),
    step('grant-cloud-apps', { agent: '', needs: ['create-account'], status: 'skipped', attempt: 0, startedAt: 0, endedAt: 0, cpuSeconds: 0, peakRssBytes: 0 }),
    step('notify', { isFinally: true, kind: 'http' }),
  ],
});
const WORKFLOWS: RegisteredWorkflow[] = [
  { name: 'onboard-employee', version: 2, versions: 2, createdAt: NOW - 3 * 86_400_000, hash: 'a1b2c3d4', description: 'Onboard a new employee: account, laptop, mail, licences and cloud apps by role', source: '', changed: false } as RegisteredWorkflow,
  { name: 'deploy', version: 1, versions: 1, createdAt: NOW - 3_600_000, hash: '99ff00ee', description: '', source: '', changed: false } as RegisteredWorkflow,
];

const view = (over: Partial<View> = {}): View => ({ ...plainView(NOW), ...over });

describe('cli tables', () => {
  it('tables - fleet', () => {
    expect(fleetTable(AGENTS, view())).toMatchInlineSnapshot(`
      "NAME                  STATE       TRANSPORT   LABELS                CPU%   MEM%   DISK%   RUNNING   LAST-SEEN
      dir-1                 connected   grpc        role=directory        12%    41%    71%     1         2s ago
      assets-1 (draining)   connected   grpc        role=assets,site=hq   12%    41%    71%     0         2s ago
      apps-1                lost        -           -                     -      -      -       0         5m ago
      "
    `);
  });

  it('tables - fleet wide adds peer, agent version and time connected', () => {
    expect(fleetTable(AGENTS, view({ wide: true }))).toMatchInlineSnapshot(`
      "NAME                  STATE       TRANSPORT   LABELS                CPU%   MEM%   DISK%   RUNNING   LAST-SEEN   PEER              VERSION   CONNECTED
      dir-1                 connected   grpc        role=directory        12%    41%    71%     1         2s ago      127.0.0.1:50123   -         1h
      assets-1 (draining)   connected   grpc        role=assets,site=hq   12%    41%    71%     0         2s ago      127.0.0.1:50123   -         1h
      apps-1                lost        -           -                     -      -      -       0         5m ago      -                 -         -
      "
    `);
  });

  it('tables - runs: steps succeeded of total, params summarised, secrets never shown', () => {
    expect(runsTable(RUNS, view())).toMatchInlineSnapshot(`
      "ID                         WORKFLOW           STATUS      STEPS   PARAMS                                     STARTED   DURATION
      r-261201-115930-7f3a2c1d   onboard-employee   running     5/12    role=sales username=bob api_token=(secr…   1m ago    1m00s
      r-261201-115800-0b1c2d3e   onboard-employee   failed      2/4     role=engineer site=headquarters usernam…   1m ago    8.0s
      r-261201-115700-aa00bb11   deploy             succeeded   4/4     -                                          1m ago    8.0s
      "
    `);
  });

  it('tables - runs wide adds workflow version, plan hash and creation time', () => {
    expect(runsTable(RUNS, view({ wide: true }))).toMatchInlineSnapshot(`
      "ID                         WORKFLOW           STATUS      STEPS   PARAMS                                                                 STARTED   DURATION   VERSION   PLAN-HASH   CREATED
      r-261201-115930-7f3a2c1d   onboard-employee   running     5/12    role=sales username=bob api_token=(secret)                             1m ago    1m00s      2         3f9c2a1b    2026-12-01T11:58:59.000Z
      r-261201-115800-0b1c2d3e   onboard-employee   failed      2/4     role=engineer site=headquarters username=carol-with-a-very-long-name   1m ago    8.0s       2         3f9c2a1b    2026-12-01T11:58:59.000Z
      r-261201-115700-aa00bb11   deploy             succeeded   4/4     -                                                                      1m ago    8.0s       -         3f9c2a1b    2026-12-01T11:58:59.000Z
      "
    `);
  });

  it('tables - status header and steps', () => {
    expect(runHeader(STATUS, view()) + '\n' + stepsTable(STATUS.steps, view())).toMatchInlineSnapshot(`
      "Run:       r-261201-115800-0b1c2d3e
      Workflow:  onboard-employee version 2
      Status:    failed (step grant-cloud-apps failed)
      Created:   2026-12-01T11:58:59.000Z (1m ago)
      Duration:  8.0s
      Params:    username=alice role=engineer
      Plan hash: 3f9c2a1b

      STEP               AGENT      STATUS      ATTEMPT   EXIT   DURATION   CPU     PEAK-RSS
      create-account     dir-1      succeeded   1         0      1.2s       0.12s   12MiB
      provision-laptop   assets-1   failed      1         3      1.2s       0.12s   12MiB
      grant-cloud-apps   -          skipped     -         -      -          -       -
      notify (finally)   dir-1      succeeded   1         0      1.2s       0.12s   12MiB
      "
    `);
  });

  it('tables - workflows', () => {
    expect(workflowsTable(WORKFLOWS, view())).toMatchInlineSnapshot(`
      "NAME               LATEST   VERSIONS   UPDATED   DESCRIPTION
      onboard-employee   2        2          3d ago    Onboard a new employee: account, laptop, mail, licences and…
      deploy             1        1          1h ago    -
      "
    `);
  });

  it('tables - with colour forced: states coloured, columns still aligned', () => {
    const coloured = runsTable(RUNS, view({ colour: true }));
    expect(coloured).toMatchInlineSnapshot(`
      "ID                         WORKFLOW           STATUS      STEPS   PARAMS                                     STARTED   DURATION
      r-261201-115930-7f3a2c1d   onboard-employee   [34mrunning[39m     5/12    role=sales username=bob api_token=(secr…   1m ago    1m00s
      r-261201-115800-0b1c2d3e   onboard-employee   [31mfailed[39m      2/4     role=engineer site=headquarters usernam…   1m ago    8.0s
      r-261201-115700-aa00bb11   deploy             [32msucceeded[39m   4/4     -                                          1m ago    8.0s
      "
    `);
    expect(coloured).toContain(`${ESC}31mfailed${ESC}39m`);
    expect(coloured).toContain(`${ESC}34mrunning${ESC}39m`);
    expect(coloured).toContain(`${ESC}32msucceeded${ESC}39m`);
    expect(stripColour(coloured)).toBe(runsTable(RUNS, view()));
    expect(stripColour(fleetTable(AGENTS, view({ colour: true })))).toBe(fleetTable(AGENTS, view()));
  });

  it('colour - states: failed and lost red, succeeded green, running blue, pending and skipped dim, draining and waiting yellow', () => {
    expect(['failed', 'lost', 'succeeded', 'running', 'pending', 'skipped', 'draining', 'waiting'].map((s) => paintState(s, true))).toEqual([
      `${ESC}31mfailed${ESC}39m`, `${ESC}31mlost${ESC}39m`, `${ESC}32msucceeded${ESC}39m`, `${ESC}34mrunning${ESC}39m`,
      `${ESC}2mpending${ESC}22m`, `${ESC}2mskipped${ESC}22m`, `${ESC}33mdraining${ESC}39m`, `${ESC}33mwaiting${ESC}39m`,
    ]);
  });

  it('colour - only on a terminal, never with NO_COLOR (any value) or -o json/yaml; FORCE_COLOR forces it', () => {
    const tty = { isTTY: true };
    const pipe = { isTTY: false };
    expect(useColour('table', {}, tty)).toBe(true);
    expect(useColour('wide', {}, tty)).toBe(true);
    expect(useColour('table', {}, pipe)).toBe(false);
    expect(useColour('table', { NO_COLOR: '' }, tty)).toBe(false);
    expect(useColour('table', { NO_COLOR: '1', FORCE_COLOR: '1' }, tty)).toBe(false);
    expect(useColour('json', {}, tty)).toBe(false);
    expect(useColour('yaml', { FORCE_COLOR: '1' }, tty)).toBe(false);
    expect(useColour('table', { FORCE_COLOR: '1' }, pipe)).toBe(true);
    expect(useColour('table', { FORCE_COLOR: '0' }, pipe)).toBe(false);
  });

  it('output - json and yaml: raw values, times as ISO-8601 (null for never), no escape codes', async () => {
    await loadYaml();
    const json = JSON.parse(formatMachine('json', RUNS[0])) as Record<string, unknown>;
    expect(json.createdAt).toBe('2026-12-01T11:58:59.000Z');
    expect(json.endedAt).toBeNull();
    expect(json.stepCounts).toEqual(RUNS[0].stepCounts);
    expect(json.params).toEqual(RUNS[0].params);
    const yaml = formatMachine('yaml', AGENTS[0]);
    expect(yaml).toContain("lastSeen: 2026-12-01T11:59:58.000Z\n");
    expect(yaml).toContain('cpuPercent: 12.4\n');
    expect(yaml + JSON.stringify(json)).not.toContain(ESC);
  });

  it('params - sorted k=v, cut with …, empty as -', () => {
    expect(paramsSummary({ b: '2', a: '1' })).toBe('a=1 b=2');
    expect(paramsSummary({ evidence_dir: '/tmp/drover-evidence', username: 'bob', role: 'sales' })).toBe('role=sales username=bob evidence_dir=/t…');
    expect(paramsSummary({ a: 'x'.repeat(50) })).toBe(`a=${'x'.repeat(37)}…`);
    expect(paramsSummary({})).toBe('-');
  });
});
