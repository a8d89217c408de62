import { appendFileSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fleetSample } from '../../control-plane/metrics/fleet-sampler.js';
import type { LiveAgent } from '../../control-plane/fleet.js';
import { FleetSampleFile, SampleWindow, type FleetSample } from '../../control-plane/store/fleet-samples.js';
import { LowdbStore } from '../../control-plane/store/lowdb-store.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import { FaultyDisk, type Errno } from '../helpers/faulty-disk.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'drover-samples-'));
const sample = (t: number, cpuPercent = 10): FleetSample => ({ t, cpuPercent, memoryPercent: 20, connected: 1, agents: 1 });

describe('fleet samples - the stored history', () => {
  it('fleet samples - survive a restart of the store and are read by time range', async () => {
    const dir = tmp();
    const a = new LowdbStore({ dataDir: dir });
    await a.open();
    for (let t = 1000; t <= 5000; t += 1000) a.appendFleetSample(sample(t, t / 100));
    await a.close();
    const b = new LowdbStore({ dataDir: dir });
    await b.open();
    expect(b.fleetSamples(2000, 4000).map((s) => [s.t, s.cpuPercent])).toEqual([[2000, 20], [3000, 30], [4000, 40]]);
    expect(b.fleetSamples(0, Infinity)).toHaveLength(5);
    await b.close();
  });

  it('fleet samples - the memory store keeps them within the same retention', () => {
    const m = new MemoryStore();
    m.appendFleetSample(sample(1));
    m.appendFleetSample(sample(8 * 24 * 3_600_000));
    expect(m.fleetSamples(0, Infinity).map((s) => s.t)).toEqual([8 * 24 * 3_600_000]);
  });

  it('fleet samples - older than the retention are dropped, and the file is rewritten once mostly expired', async () => {
    const path = join(tmp(), 'fleet-samples.ndjson');
    const f = new FleetSampleFile(path, { retentionMs: 10_000 });
    f.open();
    for (let t = 0; t < 400_000; t += 1000) {
      f.append(sample(t));
      await f.idle();
    }
    await f.close();
    // 400 appended, 11 within 10 s of the newest; the file is rewritten past 100 expired lines, so it never holds more than about 111 + 100.
    expect(f.range(0, Infinity).map((s) => s.t)).toEqual([...Array(11).keys()].map((i) => 389_000 + i * 1000));
    const lines = readFileSync(path, 'utf8').trim().split('\n');
    expect(lines.length).toBeLessThan(150);
    const again = new FleetSampleFile(path, { retentionMs: 10_000 });
    again.open();
    expect(again.range(0, Infinity)).toHaveLength(11);
  });

  it('fleet samples - a torn last line (a crash mid-append) is skipped and cut before the next append', async () => {
    const path = join(tmp(), 'fleet-samples.ndjson');
    const a = new FleetSampleFile(path);
    a.open();
    a.append(sample(1));
    await a.close();
    appendFileSync(path, '{"t":2,"cpuPer');
    const b = new FleetSampleFile(path);
    b.open();
    b.append(sample(3));
    await b.close();
    expect(readFileSync(path, 'utf8')).toBe(`${JSON.stringify(sample(1))}\n${JSON.stringify(sample(3))}\n`);
  });

  for (const [code, short] of [['ENOSPC', true], ['ENOSPC', false], ['EIO', false], ['EROFS', false]] as [Errno, boolean][]) {
    it(`fleet samples - a disk that refuses a write (${code}${short ? ', short write' : ''}) neither throws nor tears a line; the sample goes with the next append`, async () => {
      const path = join(tmp(), 'fleet-samples.ndjson');
      const disk = new FaultyDisk();
      const warned: string[] = [];
      const f = new FleetSampleFile(path, { disk, warn: (fields, msg) => warned.push(`${fields.code ?? ''} ${msg}`) });
      f.open();
      f.append(sample(1));
      disk.fail({ ops: ['writeSync'], code, short });
      expect(() => f.append(sample(2))).not.toThrow();
      expect(() => f.append(sample(3))).not.toThrow();
      expect(f.range(0, 10).map((s) => s.t)).toEqual([1, 2, 3]);
      expect(readFileSync(path, 'utf8')).toBe(`${JSON.stringify(sample(1))}\n`);
      expect(warned.filter((w) => w.includes('cannot write'))).toEqual([`${short ? 'ENOSPC' : code} cannot write the fleet sample history; samples wait in memory and go with the next one`]);
      disk.heal();
      f.append(sample(4));
      await f.close();
      expect(readFileSync(path, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as FleetSample).t)).toEqual([1, 2, 3, 4]);
      expect(warned.at(-1)).toContain('can be written again');
    });
  }

  it('fleet samples - a data dir that refuses every write leaves the lowdb store running; the samples stay readable', async () => {
    const dir = tmp();
    const disk = new FaultyDisk();
    const s = new LowdbStore({ dataDir: dir, disk });
    await s.open();
    disk.fail({ ops: ['openSync', 'writeSync', 'open'], path: /fleet-samples/, code: 'ENOSPC' });
    s.appendFleetSample(sample(5));
    expect(s.fleetSamples(0, 10)).toHaveLength(1);
    disk.heal();
    await s.close();
    expect(statSync(join(dir, 'fleet-samples.ndjson')).size).toBeGreaterThan(0);
  });

  it('fleet samples - SampleWindow keeps time order when a sample comes late', () => {
    const w = new SampleWindow(1000);
    for (const t of [100, 300, 200]) w.add(sample(t));
    expect(w.range(0, 1000).map((s) => s.t)).toEqual([100, 200, 300]);
  });

  it('fleet samples - a sample is the mean over connected agents that reported, with counts of all', () => {
    const agent = (state: LiveAgent['state'], cpuPercent?: number, memoryPercent = 0) =>
      ({ state, heartbeat: cpuPercent === undefined ? undefined : { cpuPercent, memoryPercent } }) as unknown as LiveAgent;
    // Connected with heartbeats: 30/40 and 50/60 -> 40/50; connected without one: counted, not averaged; disconnected: neither.
    expect(fleetSample([agent('connected', 30, 40), agent('connected', 50, 60), agent('connected'), agent('disconnected', 99, 99)], 7)).toEqual({
      t: 7, cpuPercent: 40, memoryPercent: 50, connected: 3, agents: 4,
    });
    expect(fleetSample([], 8)).toEqual({ t: 8, cpuPercent: 0, memoryPercent: 0, connected: 0, agents: 0 });
  });
});
