/**
 * AgentService over gRPC: Connect, one bidirectional stream per agent whose
 * identity is its client certificate, and Enroll, which trades an
 * enrollment token and a CSR for that certificate.
 */
import type * as grpc from '@grpc/grpc-js';
import type { AgentMessageOut, AgentServiceHandlers, EnrollRequestOut, EnrollResponse, ServerMessage, ServerMessageOut } from '../../proto/index.js';
import { toServiceError } from '../api/grpc-errors.js';
import { ApiError } from '../errors.js';
import type { AgentConnection, AgentIdentity, AgentLinkHandler } from './agent-link.js';

export interface GrpcAgentServiceOptions {
  /**
   * The identity in a presented client certificate, checked (the access
   * interceptor only made sure there is one); undefined on --insecure.
   * Throws when the certificate is not accepted.
   */
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
        // A status, not a message: the agent learns its credential is refused and stops.
        const status = toServiceError(new ApiError('UNAUTHENTICATED', (err as Error).message, 'enroll the agent again with a new token (drover token create --enroll)'));
        call.emit('error', status);
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
