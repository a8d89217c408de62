import { plainView } from '../../sdk/cli/output.js';
import { describe, expect, it } from 'vitest';
import { formatAgo, formatBytes, formatDuration, formatLabels } from '../../sdk/cli/format.js';
import { fleetTable } from '../../sdk/cli/render/fleet.js';
import { attemptsTable, runsTable } from '../../sdk/cli/render/runs.js';
import { displayWidth, renderTable } from '../../sdk/cli/table.js';
import type { Agent, Attempt, Run, Step } from '../../sdk/index.js';

const NOW = 1_700_000_000_000;

describe('sdk cli format', () => {
  it('format - relative times', () => {
    expect(formatAgo(NOW - 3_000, NOW)).toBe('3s ago');
    expect(formatAgo(NOW - 5 * 60_000, NOW)).toBe('5m ago');
    expect(formatAgo(NOW - 2 * 3_600_000, NOW)).toBe('2h ago');
    expect(formatAgo(NOW - 3 * 86_400_000, NOW)).toBe('3d ago');
    expect(formatAgo(0, NOW)).toBe('-');
  });

  it('format - durations', () => {
    expect(formatDuration(850)).toBe('850ms');
    expect(formatDuration(4_230)).toBe('4.2s');
    expect(formatDuration(192_000)).toBe('3m12s');
    expect(formatDuration(3_840_000)).toBe('1h04m');
  });

  it('format - bytes in binary units', () => {
    expect(formatBytes(512)).toBe('512B');
    expect(formatBytes(1536)).toBe('1.5KiB');
    expect(formatBytes(230 * 1024 * 1024)).toBe('230MiB');
    expect(formatBytes(0)).toBe('-');
  });

  it('format - labels sorted by key', () => {
    expect(formatLabels({ site: 'hq', role: 'directory' })).toBe('role=directory,site=hq');
    expect(formatLabels({})).toBe('-');
  });

  it('table - aligns columns without borders or trailing spaces', () => {
    expect(renderTable(['NAME', 'STATE'], [['dir-1', 'connected'], ['assets-long', 'lost']])).toBe(
      'NAME          STATE\ndir-1         connected\nassets-long   lost\n',
    );
  });

  it('table - colour codes take no columns, East Asian wide characters two, combining marks none', () => {
    const red = (s: string) => `\x1b[31m${s}\x1b[39m`;
    expect(displayWidth(red('failed'))).toBe(6);
    expect(displayWidth('山田')).toBe(4);
    expect(displayWidth('Jürgen')).toBe(6);
    expect(displayWidth('Ju\u0308rgen')).toBe(6);
    expect(renderTable(['USER', 'STATE'], [['山田', red('failed')], ['bob', 'ok'], ['x']])).toBe(
      `USER   STATE\n山田   ${red('failed')}\nbob    ok\nx\n`,
    );
  });

  it('table - fleet rows show state, labels, usage and last contact', () => {
    const agent: Agent = {
      name: 'dir-1',
      state: 'connected',
      labels: { role: 'directory', site: 'hq' },
      lastSeen: NOW - 2_000,
      connectedSince: NOW - 60_000,
      draining: false,
      runningSteps: 1,
      transport: 'grpc',
      peer: '',
      heartbeat: {
        at: NOW - 2_000, cpuPercent: 12.4, memoryPercent: 40.6, memoryUsedBytes: 0, memoryTotalBytes: 0,
        diskPercent: 71, load: [0.1, 0.2, 0.3], netRxBytesPerSec: 0, netTxBytesPerSec: 0, runningSteps: 1,
        journalBytes: 0, journalUnacked: 0, journalDroppedLogBytes: 0, rejectedControlMessages: 0,
      },
    };
    const lines = fleetTable([agent, { ...agent, name: "apps-1", state: "lost", transport: "", heartbeat: undefined, labels: {} }], plainView(NOW)).split('\n');
    expect(lines[0]).toMatch(/^NAME\s+STATE\s+TRANSPORT\s+LABELS\s+CPU%\s+MEM%\s+DISK%\s+RUNNING\s+LAST-SEEN$/);
    expect(lines[1]).toMatch(/^dir-1\s+connected\s+grpc\s+role=directory,site=hq\s+12%\s+41%\s+71%\s+1\s+2s ago$/);
    expect(lines[2]).toMatch(/^apps-1\s+lost\s+-\s+-\s+-\s+-\s+-\s+1\s+2s ago$/);
  });

  it('table - runs rows count succeeded steps of all, from the run\'s step counts', () => {
    const run: Run = {
      id: 'r-1', workflow: 'onboard', workflowVersion: 0, status: 'running', createdAt: NOW - 10_000, startedAt: NOW - 9_000, endedAt: 0,
      params: {}, planHash: 'h', message: '', trigger: 'api', idempotencyKey: '', rerunOf: '', deduplicated: false, stepCounts: { total: 3, pending: 0, running: 1, succeeded: 1, failed: 0, skipped: 1, cancelled: 0 },
      steps: (['succeeded', 'skipped', 'running'] as const).map((status, i) => ({
        id: `s${i}`, parent: '', kind: 'run' as const, agent: 'a', status, attempt: 1, exitCode: 0, startedAt: 0, endedAt: 0, cpuSeconds: 0,
        peakRssBytes: 0, outputs: {}, message: '', needs: [], isFinally: false, attempts: [], waiting: '', blocked: false, reusedFrom: '',
      })),
    };
    expect(runsTable([run], plainView(NOW)).split('\n')[1]).toMatch(/^r-1\s+onboard\s+running\s+1\/3\s+-\s+9s ago\s+9\.0s$/);
  });

  it('table - attempts of steps with more than one attempt or a superseded one, numbered as logs --attempt takes them', () => {
    const at = (h: number, m: number, sec: number) => new Date(2024, 0, 1, h, m, sec).getTime();
    const attempt = (over: Partial<Attempt>): Attempt => ({
      number: 1, id: 'r/s/1/a', agent: 'edge-a', agentAttempt: 1, status: 'succeeded', exitCode: 0, startedAt: at(12, 0, 1), endedAt: at(12, 0, 9),
      message: '', superseded: false, note: '', ...over,
    });
    const step = (id: string, attempts: Attempt[]): Step => ({
      id, parent: '', kind: 'run', agent: 'edge-b', status: 'succeeded', attempt: 1, exitCode: 0, startedAt: 0, endedAt: 0, cpuSeconds: 0,
      peakRssBytes: 0, outputs: {}, message: '', needs: [], isFinally: false, attempts, waiting: '', blocked: false, reusedFrom: '',
    });
    const lines = attemptsTable([
      step('single', [attempt({})]),
      step('moved', [
        attempt({ superseded: true, note: 'completed on edge-a after the agent was declared lost' }),
        attempt({ number: 2, agent: 'edge-b', startedAt: at(12, 0, 4), endedAt: at(12, 0, 6) }),
      ]),
      step('lost-only', [attempt({ status: 'lost', endedAt: 0, superseded: true, note: 'the agent was declared lost; the step failed' })]),
    ]).split('\n');
    expect(lines[0]).toMatch(/^  STEP\s+#\s+AGENT\s+STATUS\s+EXIT\s+STARTED\s+ENDED\s+NOTE$/);
    expect(lines[1]).toMatch(/^  moved\s+1\s+edge-a\s+succeeded\s+0\s+12:00:01\s+12:00:09\s+superseded: completed on edge-a after the agent was declared lost$/);
    expect(lines[2]).toMatch(/^  moved\s+2\s+edge-b\s+succeeded\s+0\s+12:00:04\s+12:00:06\s+-$/);
    expect(lines[3]).toMatch(/^  lost-only\s+1\s+edge-a\s+lost\s+-\s+12:00:01\s+-\s+superseded: the agent was declared lost; the step failed$/);
    expect(lines.slice(4)).toEqual(['']);
    expect(attemptsTable([step('single', [attempt({})])])).toBe('');
  });
});
