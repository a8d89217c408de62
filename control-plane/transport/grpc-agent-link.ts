/** AgentService.Connect over gRPC: one bidirectional stream per agent. */
import type * as grpc from '@grpc/grpc-js';
import type { AgentMessageOut, AgentServiceHandlers, ServerMessage, ServerMessageOut } from '../../proto/index.js';
import type { AgentConnection, AgentLinkHandler } from './agent-link.js';

export function grpcAgentService(handler: AgentLinkHandler): AgentServiceHandlers {
  return {
    Connect(call: grpc.ServerDuplexStream<AgentMessageOut, ServerMessageOut>) {
      let open = true;
      const conn: AgentConnection = {
        transport: 'grpc',
        peer: call.getPeer(),
        send(msg: ServerMessage) {
          if (open) call.write(msg as ServerMessageOut);
        },
        close() {
          if (!open) return;
          open = false;
          call.end();
        },
      };
      const closed = () => {
        if (!open) return handler.onClose(conn);
        open = false;
        handler.onClose(conn);
      };
      call.on('data', (msg: AgentMessageOut) => handler.onMessage(conn, msg));
      call.on('end', () => {
        closed();
        call.end();
      });
      call.on('error', closed);
      call.on('cancelled', closed);
    },
  };
}
