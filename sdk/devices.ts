import type { DeviceInfoOut } from '../proto/index.js';
import type { Connection } from './connection.js';
import { toDevice } from './convert.js';
import type { Device, DeviceSpec } from './types.js';

/** Filters for `devices.list`. */
export interface ListDevicesOptions {
  /** Only devices carrying every one of these labels. */
  labels?: Record<string, string>;
}

/** Options of `devices.add`. */
export interface AddDeviceOptions {
  /** Replace a device of the same name instead of rejecting with DeviceExistsError. */
  replace?: boolean;
}

/**
 * The device inventory: network devices that run no agent and are driven by
 * `ssh` steps through a proxy agent (an agent labelled `proxy=<network>`).
 * Only a credential name is stored; the secret stays on the proxy agents.
 */
export class DevicesApi {
  /** @internal */
  constructor(private readonly conn: Connection) {}

  /** Registers a device; rejects with InvalidDeviceError or DeviceExistsError. */
  async add(spec: DeviceSpec, options: AddDeviceOptions = {}): Promise<Device> {
    const device = {
      name: spec.name,
      host: spec.host,
      port: spec.port ?? 0,
      user: spec.user,
      credential: spec.credential,
      network: spec.network ?? '',
      labels: spec.labels ?? {},
      maxSessions: spec.maxSessions ?? 0,
    };
    return toDevice(await this.conn.unary<DeviceInfoOut>((cb) => this.conn.devices.addDevice({ device, replace: options.replace ?? false }, cb)));
  }

  /** Every device (matching `labels`), sorted by name. */
  async list(options: ListDevicesOptions = {}): Promise<Device[]> {
    const res = await this.conn.unary<{ devices: DeviceInfoOut[] }>((cb) => this.conn.devices.listDevices({ labels: options.labels ?? {} }, cb));
    return res.devices.map(toDevice);
  }

  /** One device; rejects with DeviceNotFoundError. */
  async get(name: string): Promise<Device> {
    return toDevice(await this.conn.unary<DeviceInfoOut>((cb) => this.conn.devices.getDevice({ name }, cb)));
  }

  /** Removes a device and resolves with what it was; rejects with DeviceNotFoundError. */
  async remove(name: string): Promise<Device> {
    return toDevice(await this.conn.unary<DeviceInfoOut>((cb) => this.conn.devices.removeDevice({ name }, cb)));
  }
}
