/** The agent link over gRPC: one AgentService.Connect stream per session. */
import * as grpc from '@grpc/grpc-js';
import { droverV1, type AgentMessage, type AgentServiceClient, type ServerMessageOut } from '../../proto/index.js';
import type { AgentLink, LinkHandlers, LinkSession } from './link.js';

export class GrpcLink implements AgentLink {
  private client: AgentServiceClient;

  /** `options` adds channel options (the fleet simulator asks for a connection of its own per agent). */
  constructor(
    readonly address: string,
    options: grpc.ChannelOptions = {},
  ) {
    this.client = new (droverV1().AgentService)(address, grpc.credentials.createInsecure(), {
      ...options,
      'grpc.enable_channelz': 0,
      'grpc.keepalive_time_ms': 15_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2_000,
    });
  }

  open(handlers: LinkHandlers): LinkSession {
    const call = this.client.Connect();
    let closed = false;
    const end = (reason: string) => {
      if (closed) return;
      closed = true;
      handlers.onClose(reason);
    };
    call.on('data', (m: ServerMessageOut) => handlers.onMessage(m));
    call.on('error', (e: grpc.ServiceError) => end(e.details || e.message));
    call.on('end', () => end('server closed the stream'));
    return {
      send(msg: AgentMessage) {
        if (!closed) call.write(msg);
      },
      close() {
        call.cancel();
        end('closed by agent');
      },
    };
  }
}
