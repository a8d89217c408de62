/**
 * What domain code knows of an agent link: a connection that carries
 * ServerMessages out and delivers AgentMessages in. gRPC and NATS each
 * implement it; only main.ts chooses.
 */
import type { AgentMessageOut, ServerMessage } from '../../proto/index.js';

/** Who is at the other end, as the transport proved it (never as the agent claims it). */
export interface AgentIdentity {
  name: string;
  /** Serial of the client certificate (gRPC with mTLS); '' over NATS, where the subject is the proof. */
  serial: string;
  /** When the credential stops being valid (ms); 0: not bounded by the transport. */
  notAfterMs: number;
}

export interface AgentConnection {
  readonly transport: 'grpc' | 'nats';
  /** Remote address, for logs and the fleet view. */
  readonly peer: string;
  /** Undefined only on an --insecure control plane (no TLS): then the Hello's name is taken as given. */
  readonly identity?: AgentIdentity;
  send(msg: ServerMessage): void;
  close(reason?: string): void;
}

export interface AgentLinkHandler {
  onMessage(conn: AgentConnection, msg: AgentMessageOut): void;
  onClose(conn: AgentConnection): void;
}
