/**
 * What the agent needs of a transport: open a session that sends
 * AgentMessages and delivers ServerMessages until it closes. gRPC and NATS
 * each implement it; only main.ts chooses.
 */
import type { AgentMessage, ServerMessageOut } from '../../proto/index.js';

export interface LinkSession {
  send(msg: AgentMessage): void;
  close(): void;
}

export interface LinkHandlers {
  onMessage(msg: ServerMessageOut): void;
  /**
   * The session ended (error or remote close); `reason` is for logs.
   * `refused`: the control plane refused this agent's credential, so
   * reconnecting with it cannot help. `soon`: the link knows where to go
   * now (a standby named the leader): reconnect without backing off.
   */
  onClose(reason: string, refused?: boolean, soon?: boolean): void;
}

export interface AgentLink {
  /** Human-readable address, for logs. */
  readonly address: string;
  /** The longest pause between reconnects for this link (default: the agent's RECONNECT_MAX_MS). */
  readonly maxReconnectMs?: number;
  open(handlers: LinkHandlers): LinkSession;
}
