import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Devices } from '../../control-plane/devices.js';
import { ApiError } from '../../control-plane/errors.js';
import { Fleet } from '../../control-plane/fleet.js';
import { LowdbStore } from '../../control-plane/store/lowdb-store.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import type { DeviceRecord, Store } from '../../control-plane/store/store.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'drover-store-devices-'));

const device = (name: string, extra: Partial<DeviceRecord> = {}): DeviceRecord => ({
  name,
  host: `${name}.lab`,
  port: 22,
  user: 'admin',
  credential: 'lab',
  network: 'lab',
  labels: { role: 'access' },
  maxSessions: 1,
  createdMs: 1,
  updatedMs: 1,
  ...extra,
});

describe.each<[string, () => Store]>([
  ['lowdb', () => new LowdbStore({ dataDir: tmp() })],
  ['memory', () => new MemoryStore()],
])('store (%s) - devices', (_name, make) => {
  it('store - puts, lists by name, replaces and deletes devices', async () => {
    const store = make();
    await store.open();
    store.putDevice(device('sw-2'));
    store.putDevice(device('sw-1'));
    store.putDevice(device('sw-2', { host: '10.0.0.2' }));
    expect(store.listDevices().map((d) => [d.name, d.host])).toEqual([
      ['sw-1', 'sw-1.lab'],
      ['sw-2', '10.0.0.2'],
    ]);
    expect(store.deleteDevice('sw-1')).toBe(true);
    expect(store.deleteDevice('sw-1')).toBe(false);
    expect(store.getDevice('sw-1')).toBeUndefined();
    await store.close();
  });
});

describe('store (lowdb) - devices survive restarts', () => {
  it('store - devices come back after a clean close and after a crash (replayed from the change log)', async () => {
    const dataDir = tmp();
    const a = new LowdbStore({ dataDir });
    await a.open();
    a.putDevice(device('sw-1'));
    a.putDevice(device('sw-2'));
    await a.close();

    const b = new LowdbStore({ dataDir });
    await b.open();
    expect(b.listDevices().map((d) => d.name)).toEqual(['sw-1', 'sw-2']);
    b.deleteDevice('sw-1');
    b.putDevice(device('sw-3', { labels: { role: 'core' } }));
    await b.flush();
    // No close: as if the control plane had been killed.

    const c = new LowdbStore({ dataDir });
    await c.open();
    expect(c.listDevices()).toEqual([device('sw-2'), device('sw-3', { labels: { role: 'core' } })]);
    await c.close();
  });
});

describe('device inventory', () => {
  const inventory = async () => {
    const store = new MemoryStore();
    let now = 1000;
    return { store, devices: new Devices(store, new Fleet(store, () => now), () => now++) };
  };

  it('devices - add fills defaults, refuses a duplicate name unless replacing, keeps createdMs', async () => {
    const { devices } = await inventory();
    const d = await devices.add({ name: 'sw-1', host: '10.0.0.1', port: 0, user: 'admin', credential: 'lab', network: '', labels: {}, maxSessions: 0 }, false);
    expect(d).toMatchObject({ port: 22, network: 'default', maxSessions: 1, createdMs: 1000, updatedMs: 1000 });
    const dup = await devices.add({ ...d, host: '10.0.0.9' }, false).catch((e: unknown) => e);
    expect(dup).toBeInstanceOf(ApiError);
    expect(dup).toMatchObject({ code: 'DEVICE_EXISTS', message: 'a device named "sw-1" is already registered (admin@10.0.0.1:22, network default)' });
    const replaced = await devices.add({ ...d, host: '10.0.0.9' }, true);
    expect(replaced).toMatchObject({ host: '10.0.0.9', createdMs: 1000, updatedMs: 1001 });
  });

  it('devices - a credential that looks like a secret or a path, and other bad fields, are INVALID_DEVICE', async () => {
    const { devices } = await inventory();
    const base = { name: 'sw-1', host: '10.0.0.1', port: 22, user: 'admin', credential: 'lab', network: 'lab', labels: {}, maxSessions: 1 };
    const fail = (patch: object) => devices.add({ ...base, ...patch }, false).catch((e: ApiError) => `${e.code}: ${e.message}`);
    expect(await fail({ credential: '/home/me/.ssh/id_ed25519' })).toMatch(/^INVALID_DEVICE: --credential "\/home\/me\/.ssh\/id_ed25519" is not a credential reference/);
    expect(await fail({ name: 'bad name' })).toMatch(/^INVALID_DEVICE: device name "bad name" is not valid/);
    expect(await fail({ host: 'admin@10.0.0.1' })).toBe('INVALID_DEVICE: --host "admin@10.0.0.1" is not a host name or address');
    expect(await fail({ port: 70000 })).toBe('INVALID_DEVICE: --port 70000 is not a port number (1-65535)');
    expect(await fail({ maxSessions: 17 })).toBe('INVALID_DEVICE: --max-sessions 17 must be a whole number from 1 to 16');
    expect(await fail({ labels: { 'role!': 'x' } })).toMatch(/^INVALID_DEVICE: label "role!=x" is not key=value/);
  });

  it('devices - removing an unknown device lists the registered ones', async () => {
    const { devices } = await inventory();
    await devices.add({ name: 'sw-1', host: 'h', port: 22, user: 'u', credential: 'c', network: 'n', labels: {}, maxSessions: 1 }, false);
    const err = await devices.remove('sw-9').catch((e: ApiError) => e);
    expect(err).toMatchObject({ code: 'DEVICE_NOT_FOUND', message: 'no device named "sw-9" in the inventory', hint: 'registered devices: sw-1' });
  });
});
