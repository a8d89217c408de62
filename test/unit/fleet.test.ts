import { describe, expect, it } from 'vitest';
import { Fleet } from '../../control-plane/fleet.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import type { AgentRecord } from '../../control-plane/store/store.js';

const record = (name: string, lastSeenMs: number): AgentRecord => ({
  name,
  labels: {},
  facts: { hostname: name, os: '', osRelease: '', arch: '', cpuModel: '', cpuCount: 1, memoryBytes: 1, disks: [], ipAddresses: [], agentVersion: '' },
  firstSeenMs: 0,
  lastSeenMs,
  appliedSeq: 0,
  instanceId: 'i',
  draining: false,
});

describe('fleet liveness', () => {
  it('fleet liveness - agents loaded after a long outage get the full lostAfter to come back', () => {
    const store = new MemoryStore();
    store.putAgent(record('old', 0));
    let now = 10 * 60_000;
    const fleet = new Fleet(store, () => now);
    expect(fleet.sweep(15_000, 60_000)).toEqual([]);
    now += 59_000;
    expect(fleet.sweep(15_000, 60_000)).toEqual([]);
    now += 2_000;
    expect(fleet.sweep(15_000, 60_000)).toEqual(['old']);
    expect(fleet.get('old')?.state).toBe('lost');
    expect(fleet.get('old')?.record.lastSeenMs).toBe(0);
  });
});
