/**
 * The device inventory: network devices (switches, routers, appliances) that
 * run no agent. ssh steps name them (or select them by label); the compiler
 * resolves their connection, and placement routes each step to a proxy agent
 * for the device's network. Only a credential *reference* is stored: the
 * secret stays on the proxy agents.
 */
import { LABEL_KEY, LABEL_VALUE } from '../common/names.js';
import { DEFAULT_NETWORK, NAME_PATTERN, NETWORK_PATTERN } from '../common/workflow/compiler/schema.js';
import { ApiError, NotFoundError } from './errors.js';
import type { Fleet } from './fleet.js';
import { proxiesFor, type FleetDevice } from '../common/workflow/model/target.js';
import { flushOrUndo, requireWritable } from './store-guard.js';
import type { DeviceRecord, Store } from './store/store.js';

/** What `drover device add` gives; empty or zero fields take their defaults (port 22, network "default", maxSessions 1). */
export type DeviceSpec = FleetDevice;

/** Most sessions a device may be given at once on one proxy agent. */
export const MAX_SESSIONS_LIMIT = 16;

/** A host name or an IPv4/IPv6 address, without spaces or a user part. */
const HOST = /^[A-Za-z0-9._:%[\]-]{1,253}$/;

const invalid = (message: string, hint = '') => new ApiError('INVALID_DEVICE', message, hint);

export class Devices {
  constructor(
    private readonly store: Store,
    private readonly fleet: Fleet,
    private readonly now: () => number,
  ) {}

  /** Registers a device (or, with `replace`, replaces one); the record is on disk when this resolves. */
  async add(spec: DeviceSpec, replace: boolean): Promise<DeviceRecord> {
    const d = this.validate(spec);
    const existing = this.store.getDevice(d.name);
    if (existing && !replace) {
      throw new ApiError(
        'DEVICE_EXISTS',
        `a device named "${d.name}" is already registered (${existing.user}@${existing.host}:${existing.port}, network ${existing.network})`,
        `replace it with \`drover device add ${d.name} ... --replace\`, or remove it first with \`drover device remove ${d.name}\``,
      );
    }
    requireWritable(this.store, 'the device was not registered');
    const now = this.now();
    const record: DeviceRecord = { ...d, createdMs: existing?.createdMs ?? now, updatedMs: now };
    this.store.putDevice(record);
    await flushOrUndo(this.store, 'the device was not registered', () => (existing ? this.store.putDevice(existing) : this.store.deleteDevice(d.name)));
    return record;
  }

  /** Devices carrying every label of `labels`, by name. */
  list(labels: Record<string, string> = {}): DeviceRecord[] {
    return this.store.listDevices().filter((d) => Object.entries(labels).every(([k, v]) => d.labels[k] === v));
  }

  get(name: string): DeviceRecord {
    const d = this.store.getDevice(name);
    if (!d) throw this.notFound(name);
    return d;
  }

  async remove(name: string): Promise<DeviceRecord> {
    const d = this.get(name);
    requireWritable(this.store, 'the device was not removed');
    this.store.deleteDevice(name);
    await flushOrUndo(this.store, 'the device was not removed', () => this.store.putDevice(d));
    return d;
  }

  /** Agents that proxy for a network now (any state but lost), by name. */
  proxies(network: string): string[] {
    return this.fleet
      .snapshot()
      .filter((a) => a.state !== 'lost' && proxiesFor(a, network))
      .map((a) => a.name);
  }

  private notFound(name: string): NotFoundError {
    const names = this.store.listDevices().map((d) => d.name);
    return new NotFoundError(
      'DEVICE_NOT_FOUND',
      `no device named "${name}" in the inventory`,
      names.length ? `registered devices: ${names.slice(0, 20).join(', ')}${names.length > 20 ? ', …' : ''}` : 'register one with `drover device add NAME --host HOST --user USER --credential REF`',
    );
  }

  /** Checks a spec and fills its defaults. */
  private validate(s: DeviceSpec): Omit<DeviceRecord, 'createdMs' | 'updatedMs'> {
    if (!NAME_PATTERN.test(s.name)) throw invalid(`device name "${s.name}" is not valid: use letters, digits, ".", "-" and "_" (at most 63), starting with a letter or digit`);
    if (!HOST.test(s.host)) throw invalid(`--host "${s.host}" is not a host name or address`, 'give the address the proxy agent dials, e.g. --host 10.0.0.2 or --host sw1.lab.example');
    const port = s.port || 22;
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid(`--port ${s.port} is not a port number (1-65535)`);
    if (!s.user || /\s/.test(s.user)) throw invalid(`--user "${s.user}" is not a login name`, 'give the user the device accepts, e.g. --user admin');
    if (!NAME_PATTERN.test(s.credential)) {
      throw invalid(
        `--credential "${s.credential}" is not a credential reference: use a name (letters, digits, ".", "-", "_"), never a secret or a path`,
        'the proxy agent maps the name to a key or password file: drover agent ... --credential NAME=/path/to/key',
      );
    }
    const network = s.network || DEFAULT_NETWORK;
    if (!NETWORK_PATTERN.test(network)) throw invalid(`--network "${network}" is not valid: use letters, digits, ".", "-" and "_" (it is a label value: proxy=${network})`);
    for (const [k, v] of Object.entries(s.labels)) {
      if (!LABEL_KEY.test(k) || !LABEL_VALUE.test(v)) throw invalid(`label "${k}=${v}" is not key=value (letters, digits, ".", "-", "_"; for example role=access)`);
    }
    const maxSessions = s.maxSessions || 1;
    if (!Number.isInteger(maxSessions) || maxSessions < 1 || maxSessions > MAX_SESSIONS_LIMIT) {
      throw invalid(`--max-sessions ${s.maxSessions} must be a whole number from 1 to ${MAX_SESSIONS_LIMIT}`);
    }
    return { name: s.name, host: s.host, port, user: s.user, credential: s.credential, network, labels: { ...s.labels }, maxSessions };
  }
}
