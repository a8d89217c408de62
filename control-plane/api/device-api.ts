/** DeviceService: the device inventory (add, list, get, remove). */
import type { DeviceInfo, DeviceServiceHandlers } from '../../proto/index.js';
import { ApiError } from '../errors.js';
import type { Devices } from '../devices.js';
import type { DeviceRecord } from '../store/store.js';
import { toDeviceInfo } from './convert.js';
import { unary } from './grpc-errors.js';

export function deviceService(devices: Devices): DeviceServiceHandlers {
  const info = (d: DeviceRecord): DeviceInfo => toDeviceInfo(d, devices.proxies(d.network));
  return {
    AddDevice: unary(async (req) => {
      const d = req.device;
      if (!d) throw new ApiError('INVALID_DEVICE', 'AddDevice needs a device');
      const spec = { name: d.name, host: d.host, port: d.port, user: d.user, credential: d.credential, network: d.network, labels: { ...d.labels }, maxSessions: d.maxSessions };
      return info(await devices.add(spec, req.replace));
    }),
    ListDevices: unary((req) => ({ devices: devices.list(req.labels).map(info) })),
    GetDevice: unary((req) => info(devices.get(req.name))),
    RemoveDevice: unary(async (req) => info(await devices.remove(req.name))),
  };
}
