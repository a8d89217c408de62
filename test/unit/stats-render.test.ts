import { describe, expect, it } from 'vitest';
import { describeWindow, sparkline, statsDocument, statsTable } from '../../sdk/cli/render/stats.js';
import { windowMs } from '../../sdk/stats.js';
import { InvalidInputError, type Stats, type WorkflowStats } from '../../sdk/index.js';

const T = Date.UTC(2026, 11, 1, 12, 0, 0);
const HOUR = 3_600_000;

function wf(workflow: string, over: Partial<WorkflowStats> = {}): WorkflowStats {
  return {
    workflow, runsEnded: 20, runsSucceeded: 17, runsFailed: 2, runsCancelled: 1, runsActive: 1, completionRate: 0.85, cycleP50Ms: 100_000, cycleP95Ms: 190_000, cycleMaxMs: 200_000,
    attempts: 25, attemptsFailed: 6, attemptErrorRate: 0.24, runErrorRate: 0.1, cpuSeconds: 11.25, peakRssBytes: 300 * 1024 * 1024, fleetCpuPercent: 23.333, fleetMemoryPercent: 40,
    trend: [0, 8, 9, 3].map((ended, i) => ({ start: T - HOUR + i * 900_000, ended, succeeded: ended, failed: 0, cycleP50Ms: 0 })),
    ...over,
  };
}

const STATS: Stats = { from: T - HOUR, to: T, overall: wf(''), workflows: [wf('deploy'), wf('backup-nightly', { runsEnded: 0, runsSucceeded: 0, runsFailed: 0, runsCancelled: 0, attempts: 0, attemptsFailed: 0, cpuSeconds: 0, peakRssBytes: 0, fleetCpuPercent: 0, fleetMemoryPercent: 0, trend: [0, 0, 0, 0].map((ended, i) => ({ start: T - HOUR + i * 900_000, ended, succeeded: 0, failed: 0, cycleP50Ms: 0 })) })] };

describe('stats render - drover stats output', () => {
  it('stats render - the table: the window, a row per workflow, an (all) row, rates with their counts, humanised durations', () => {
    expect(statsTable(STATS)).toBe(
      [
        'window: the last 1h (2026-12-01T11:00:00.000Z to 2026-12-01T12:00:00.000Z); trend: runs ended in 4 slices of 15m',
        'WORKFLOW         ENDED   ACTIVE   COMPLETED       FAILED         CANCELLED   ATTEMPTS FAILED   CYCLE P50   P95     MAX     CPU     PEAK MEM   FLEET CPU / MEM   TREND',
        'deploy           20      1        85.0% (17/20)   10.0% (2/20)   1           24.0% (6/25)      1m40s       3m10s   3m20s   11.3s   300MiB     23.3% / 40.0%     ·▇█▃',
        'backup-nightly   0       1        -               -              0           -                 -           -       -       -       -          -                 ····',
        '(all)            20      1        85.0% (17/20)   10.0% (2/20)   1           24.0% (6/25)      1m40s       3m10s   3m20s   11.3s   300MiB     23.3% / 40.0%     ·▇█▃',
        '',
      ].join('\n'),
    );
  });

  it('stats render - nothing ended and nothing active says so under the window line', () => {
    const empty = { ...STATS, overall: wf('', { runsEnded: 0, runsActive: 0 }), workflows: [] };
    expect(statsTable(empty).split('\n')[1]).toBe('no run ended in the window and none is active');
  });

  it('stats render - JSON keeps raw numbers and adds ISO times', () => {
    const doc = statsDocument(STATS);
    expect(doc).toMatchObject({ from: '2026-12-01T11:00:00.000Z', to: '2026-12-01T12:00:00.000Z', fromMs: T - HOUR, toMs: T, windowMs: HOUR });
    expect(doc.overall).toMatchObject({ completionRate: 0.85, cycleP95Ms: 190_000, peakRssBytes: 300 * 1024 * 1024 });
    expect(doc.overall.trend[1]).toEqual({ start: '2026-12-01T11:15:00.000Z', startMs: T - HOUR + 900_000, ended: 8, succeeded: 8, failed: 0, cycleP50Ms: 0 });
  });

  it('stats render - windows and sparklines', () => {
    expect([86_400_000, 7 * 86_400_000, 90 * 60_000, 30_000, 1500].map(describeWindow)).toEqual(['24h', '7d', '90m', '30s', '1500ms']);
    expect(sparkline([0, 1, 4, 8])).toBe('·▂▅█');
    expect(sparkline([])).toBe('');
  });

  it('stats render - the SDK takes since as ms or a duration, and names a bad one', () => {
    expect(windowMs(undefined)).toBe(0);
    expect(windowMs('24h')).toBe(86_400_000);
    expect(windowMs(90_000)).toBe(90_000);
    expect(() => windowMs('soon')).toThrow(InvalidInputError);
    expect(() => windowMs(-1)).toThrow(`since -1 is not a window: give ms (a positive number) or a duration such as '24h', '30m' or '7d'`);
  });
});
