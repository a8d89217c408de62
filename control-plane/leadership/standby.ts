/**
 * What a standby replica serves on its gRPC address while another leads:
 * every call of every service is refused with NOT_LEADER, naming the leader
 * (the `drover-leader` metadata carries its address). The SDK and CLI then
 * repeat the call there, and gRPC agents dial it: a standby has done
 * nothing with the call, so repeating it is safe. It checks no token, since
 * it reveals only where the leader is, which every replica's flags say.
 */
import * as grpc from '@grpc/grpc-js';
import { NotLeaderError } from '../errors.js';
import { toServiceError } from '../api/grpc-errors.js';
import type { LeaderInfo } from './lease.js';

/** Handlers for every method of `service` that refuse with NOT_LEADER. */
export function standbyService(service: grpc.ServiceDefinition, self: () => string, leader: () => LeaderInfo | undefined): grpc.UntypedServiceImplementation {
  const refusal = () => toServiceError(new NotLeaderError(self(), leader())) as grpc.ServiceError;
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, def] of Object.entries(service)) {
    if (!def.responseStream && !def.requestStream) impl[name] = ((_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(refusal())) as grpc.UntypedHandleCall;
    else if (!def.responseStream) impl[name] = ((call: grpc.ServerReadableStream<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      call.on('error', () => undefined);
      callback(refusal());
    }) as grpc.UntypedHandleCall;
    else impl[name] = ((call: grpc.ServerWritableStream<unknown, unknown>) => {
      call.on('error', () => undefined);
      call.emit('error', refusal());
    }) as grpc.UntypedHandleCall;
  }
  return impl;
}
