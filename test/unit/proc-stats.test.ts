import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ProcStats } from '../../agent/executor/proc-stats.js';

describe('proc stats', () => {
  it('proc stats - counts the CPU time and memory of every process in the step group, children included', async () => {
    // The busy loop runs in a child of the group leader, and a grandchild outlives its parent.
    const script = 'sh -c \'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done\'; (sleep 0.3 &); sleep 0.1';
    const child = spawn('/bin/sh', ['-c', script], { detached: true, stdio: 'ignore' });
    const stats = new ProcStats();
    stats.track(child.pid!);
    const timer = setInterval(() => stats.sample(), 25);
    await new Promise((r) => child.once('close', r));
    clearInterval(timer);
    const usage = stats.untrack(child.pid!);
    expect(usage.cpuSeconds).toBeGreaterThan(0.02);
    expect(usage.peakRssBytes).toBeGreaterThan(100 * 1024);
  });

  it('proc stats - a sample reads the tracked trees only, so it stays cheap', async () => {
    const child = spawn('/bin/sh', ['-c', 'sleep 5'], { detached: true, stdio: 'ignore' });
    const stats = new ProcStats();
    stats.track(child.pid!);
    await new Promise((r) => setTimeout(r, 50));
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) stats.sample();
    const perSample = (performance.now() - t0) / 20;
    process.kill(-child.pid!, 'SIGKILL');
    expect(stats.untrack(child.pid!).peakRssBytes).toBeGreaterThan(0);
    expect(perSample).toBeLessThan(2);
  });
});
