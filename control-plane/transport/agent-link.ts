/**
 * What domain code knows of an agent link: a connection that carries
 * ServerMessages out and delivers AgentMessages in. gRPC and NATS each
 * implement it; only main.ts chooses.
 */
import type { AgentMessageOut, ServerMessage } from '../../proto/index.js';

export interface AgentConnection {
  readonly transport: 'grpc' | 'nats';
  /** Remote address, for logs and the fleet view. */
  readonly peer: string;
  send(msg: ServerMessage): void;
  close(reason?: string): void;
}

export interface AgentLinkHandler {
  onMessage(conn: AgentConnection, msg: AgentMessageOut): void;
  onClose(conn: AgentConnection): void;
}
