/** The agent link over gRPC: one AgentService.Connect stream per session, over mTLS with the agent's certificate. */
import * as grpc from '@grpc/grpc-js';
import { droverV1, type AgentMessage, type AgentServiceClient, type ServerMessageOut } from '../../proto/index.js';
import type { AgentLink, LinkHandlers, LinkSession } from './link.js';
import { checkControlPlaneIdentity } from '../../common/tls.js';

/** The agent's TLS material; undefined: plaintext (a control plane on --insecure, loopback only). */
export interface LinkTls {
  caPem: string;
  certPem: string;
  keyPem: string;
}

export class GrpcLink implements AgentLink {
  private client: AgentServiceClient | undefined;
  private tls: LinkTls | undefined;

  /** `options` adds channel options (the fleet simulator asks for a connection of its own per agent). */
  constructor(
    readonly address: string,
    tls: LinkTls | undefined,
    private readonly options: grpc.ChannelOptions = {},
  ) {
    this.tls = tls;
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
    this.client = new (droverV1().AgentService)(this.address, creds, {
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
    const end = (reason: string, refused = false) => {
      if (closed) return;
      closed = true;
      handlers.onClose(reason, refused);
    };
    call.on('data', (m: ServerMessageOut) => handlers.onMessage(m));
    call.on('error', (e: grpc.ServiceError) => end(e.details || e.message, e.code === grpc.status.UNAUTHENTICATED));
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
