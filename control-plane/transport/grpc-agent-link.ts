/**
 * AgentService over gRPC: Connect, one bidirectional stream per agent whose
 * identity is its client certificate, and Enroll, which trades an
 * enrollment token and a CSR for that certificate.
 */
import type * as grpc from '@grpc/grpc-js';
import type { AgentMessageOut, AgentServiceHandlers, EnrollRequestOut, EnrollResponse, ServerMessage, ServerMessageOut } from '../../proto/index.js';
import type { AgentConnection, AgentIdentity, AgentLinkHandler } from './agent-link.js';

export interface GrpcAgentServiceOptions {
  /** The identity in a presented client certificate (the access interceptor has already checked it); undefined on --insecure. */
  identify(der: Buffer | undefined): AgentIdentity | undefined;
  enroll: grpc.handleUnaryCall<EnrollRequestOut, EnrollResponse>;
}

export function grpcAgentService(handler: AgentLinkHandler, o: GrpcAgentServiceOptions): AgentServiceHandlers {
  return {
    Enroll: o.enroll,
    Connect(call: grpc.ServerDuplexStream<AgentMessageOut, ServerMessageOut>) {
      let identity: AgentIdentity | undefined;
      try {
        identity = o.identify(call.getAuthContext()?.sslPeerCertificate?.raw);
      } catch (err) {
        call.write({ reject: { code: 'BAD_CERTIFICATE', message: (err as Error).message } });
        call.end();
        return;
      }
      let open = true;
      const conn: AgentConnection = {
        transport: 'grpc',
        peer: call.getPeer(),
        identity,
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
