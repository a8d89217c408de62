/**
 * `npm run bench -- --quick` end to end, so the benchmark cannot rot: it
 * runs real processes (control plane, agents, nats-server, simulated fleets)
 * and must write a results file with every figure, each measured value next
 * to its baseline and ratio, and the machine it ran on. Whether targets pass
 * depends on the machine and is not checked here.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Results } from '../../scripts/bench/report.js';
import { tempDir } from '../helpers/cluster.js';

const ROOT = resolve(import.meta.dirname, '../..');
const FIGURES = ['stepOverhead', 'crossAgentHop', 'fanOut', 'idleFleet', 'agentFootprint', 'throughput', 'signing', 'cliStartup'];

describe('bench', () => {
  it('bench - the quick benchmark measures every figure against its baseline and writes the results file', async () => {
    const out = join(tempDir('drover-bench-test-'), 'results.json');
    const started = Date.now();
    const { code, output } = await new Promise<{ code: number | null; output: string }>((res) => {
      // Its own process group: a hung bench is killed with every process it started.
      const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/bench/main.ts', '--quick', '--out', out], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.stderr.on('data', (d: Buffer) => (text += d.toString()));
      const kill = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 110_000);
      child.once('exit', (c) => {
        clearTimeout(kill);
        res({ code: c, output: text });
      });
    });
    expect(code, output).toBe(0);
    // The quick mode is meant to stay well under a minute; leave room for a busy machine.
    expect(Date.now() - started).toBeLessThan(100_000);

    const results = JSON.parse(readFileSync(out, 'utf8')) as Results;
    expect(results.mode).toBe('quick');
    expect(results.machine.cores).toBeGreaterThan(0);
    expect(results.machine.node).toBe(process.version);
    expect(Object.keys(results.figures).sort()).toEqual([...FIGURES].sort());
    for (const key of FIGURES) {
      const { rows } = results.figures[key];
      expect(rows.length, key).toBeGreaterThan(0);
      for (const r of rows) {
        expect(Number.isFinite(r.value), `${r.id} value`).toBe(true);
        expect(Number.isFinite(r.baseline.value), `${r.id} baseline`).toBe(true);
        expect(typeof r.ratio, `${r.id} ratio`).toBe('number');
        expect(r.unit, r.id).not.toBe('');
      }
    }
    const ids = Object.values(results.figures).flatMap((f) => f.rows.map((r) => r.id));
    for (const id of ['stepOverhead.perStepAboveFloor', 'crossAgentHop.perHop', 'fanOut.nats.1000.completeMs', 'agentFootprint.rssMB', 'agentFootprint.cpuPercent', 'throughput.runsPerSecond']) {
      expect(ids).toContain(id);
    }
    expect(ids.some((id) => id.startsWith('idleFleet.') && id.endsWith('.cpuPercent'))).toBe(true);
    expect(results.targets.length).toBeGreaterThan(0);
    for (const t of results.targets) expect(typeof t.pass, t.id).toBe('boolean');
    // The table is printed too.
    expect(output).toMatch(/1 per-step overhead/);
    expect(output).toMatch(/targets: \d+ of \d+ met/);
  }, 120_000);
});
