/**
 * The agent link over gRPC: one AgentService.Connect stream per session, over
 * mTLS with the agent's certificate.
 *
 * A replicated control plane is given as several addresses: a session that
 * a standby refuses (NOT_LEADER) goes next to the leader it names, and one
 * that fails otherwise to the next address in the list.
 */
import * as grpc from '@grpc/grpc-js';
import { LEADER_METADATA_KEY } from '../../common/errors.js';
import { droverV1, type AgentMessage, type AgentServiceClient, type ServerMessageOut } from '../../proto/index.js';
import type { AgentLink, LinkHandlers, LinkSession } from './link.js';
import { checkControlPlaneIdentity } from '../../common/tls.js';

/** The agent's TLS material; undefined: plaintext (a control plane on --insecure, loopback only). */
export interface LinkTls {
  caPem: string;
  certPem: string;
  keyPem: string;
}

/** The longest reconnect pause with several control-plane replicas (maxReconnectMs). */
const REPLICATED_MAX_RECONNECT_MS = 1_000;

export class GrpcLink implements AgentLink {
  private client: AgentServiceClient | undefined;
  private tls: LinkTls | undefined;
  private readonly addresses: string[];
  private current: string;
  /**
   * With several replicas, a failed dial is mostly a leader that died and a
   * standby about to take over (the lease, 3 s by default): try them all
   * again within a second instead of backing off to the agent's 5 s.
   */
  readonly maxReconnectMs: number | undefined;

  /** `servers`: HOST:PORT, or several comma-separated. `options` adds channel options (the fleet simulator asks for a connection of its own per agent). */
  constructor(
    servers: string,
    tls: LinkTls | undefined,
    private readonly options: grpc.ChannelOptions = {},
  ) {
    this.tls = tls;
    this.addresses = servers.split(',');
    this.current = this.addresses[0];
    this.maxReconnectMs = this.addresses.length > 1 ? REPLICATED_MAX_RECONNECT_MS : undefined;
  }

  /** The address the next session dials. */
  get address(): string {
    return this.current;
  }

  /** Dials `address` from the next session on. */
  private moveTo(address: string) {
    if (address === this.current) return;
    this.current = address;
    this.client?.close();
    this.client = undefined;
  }

  /** New credentials (a renewed certificate): the next session dials with them. */
  setTls(tls: LinkTls): void {
    this.tls = tls;
    this.client?.close();
    this.client = undefined;
  }

  private stub(): AgentServiceClient {
    if (this.client) return this.client;
    const creds = this.tls
      ? grpc.credentials.createSsl(Buffer.from(this.tls.caPem), Buffer.from(this.tls.keyPem), Buffer.from(this.tls.certPem), { checkServerIdentity: checkControlPlaneIdentity })
      : grpc.credentials.createInsecure();
    this.client = new (droverV1().AgentService)(this.current, creds, {
      ...this.options,
      'grpc.enable_channelz': 0,
      'grpc.keepalive_time_ms': 15_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2_000,
    });
    return this.client;
  }

  open(handlers: LinkHandlers): LinkSession {
    const call = this.stub().Connect();
    let closed = false;
    let welcomed = false;
    const end = (reason: string, refused = false, soon = false) => {
      if (closed) return;
      closed = true;
      handlers.onClose(reason, refused, soon);
    };
    call.on('data', (m: ServerMessageOut) => {
      welcomed = true;
      handlers.onMessage(m);
    });
    call.on('error', (e: grpc.ServiceError) => {
      const leader = e.metadata?.get(LEADER_METADATA_KEY)[0];
      if (typeof leader === 'string' && leader) {
        // A standby named the leader: go there at once.
        this.moveTo(leader);
        return end(`${e.details}; dialling the leader at ${leader}`, false, true);
      }
      // Another address may be up (or lead) when this one failed before answering.
      if (!welcomed && e.code === grpc.status.UNAVAILABLE && this.addresses.length > 1) this.moveTo(this.addresses[(this.addresses.indexOf(this.current) + 1) % this.addresses.length]);
      end(e.details || e.message, e.code === grpc.status.UNAUTHENTICATED);
    });
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
