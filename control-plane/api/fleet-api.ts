/** FleetService: list, get and watch agents. */
import type * as grpc from '@grpc/grpc-js';
import type { AgentInfo, FleetServiceHandlers } from '../../proto/index.js';
import type { WatchAgentsRequest__Output } from '../../proto/gen/drover/v1/WatchAgentsRequest.js';
import { NotFoundError } from '../errors.js';
import type { Fleet } from '../fleet.js';
import { toAgentInfo } from './convert.js';
import { unary } from './grpc-errors.js';

export function fleetService(fleet: Fleet): FleetServiceHandlers {
  return {
    ListAgents: unary((req) =>
      ({
        agents: fleet
          .list()
          .filter((a) => Object.entries(req.labels).every(([k, v]) => a.record.labels[k] === v))
          .map(toAgentInfo),
      })),
    GetAgent: unary((req) => {
      const a = fleet.get(req.name);
      if (!a) throw new NotFoundError('AGENT_NOT_FOUND', `no agent named "${req.name}"`, 'list agents with `drover fleet`');
      return toAgentInfo(a);
    }),
    DrainAgent: unary((req) => {
      const a = fleet.setDraining(req.name, req.drain);
      if (!a) throw new NotFoundError('AGENT_NOT_FOUND', `no agent named "${req.name}"`, 'list agents with `drover fleet`');
      return toAgentInfo(a);
    }),
    WatchAgents(call: grpc.ServerWritableStream<WatchAgentsRequest__Output, AgentInfo>) {
      for (const a of fleet.list()) call.write(toAgentInfo(a));
      const off = fleet.changes.subscribe((a) => call.write(toAgentInfo(a)));
      call.on('cancelled', off);
      call.on('close', off);
    },
  };
}
