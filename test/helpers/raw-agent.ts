/**
 * A hand-driven agent for protocol tests: enrolled like a real one (its own
 * key and certificate), speaking AgentService.Connect over mTLS, with every
 * control message it receives checked and unwrapped as the real agent does.
 */
import * as grpc from '@grpc/grpc-js';
import { ControlVerifier } from '../../agent/control.js';
import type { LinkTls } from '../../agent/link/grpc-link.js';
import { droverV1, type AgentMessage, type AgentServiceClient, type ServerMessageOut } from '../../proto/index.js';
import { enrollSimAgents } from '../../scripts/sim/enroll.js';
import type { AgentTarget } from './cluster.js';

export interface RawAgent {
  name: string;
  tls: LinkTls;
  client: AgentServiceClient;
  /** Opens a Connect stream; `inbox` holds what arrived, control messages unwrapped (refused ones left out). */
  connect(): { call: grpc.ClientDuplexStream<AgentMessage, ServerMessageOut>; inbox: ServerMessageOut[]; send(m: AgentMessage): void; errors: grpc.ServiceError[] };
  close(): void;
}

/** Enrolls `name` at `server` and returns a client holding its certificate. */
export async function rawAgent(server: AgentTarget, name: string): Promise<RawAgent> {
  const ids = await enrollSimAgents(server.address, server.enrollToken, [name]);
  const tls = ids.tls.get(name)!;
  const client = new (droverV1().AgentService)(
    server.address,
    grpc.credentials.createSsl(Buffer.from(tls.caPem), Buffer.from(tls.keyPem), Buffer.from(tls.certPem)),
    { 'grpc.use_local_subchannel_pool': 1 },
  );
  const verifier = new ControlVerifier(name, ids.controlKey, undefined);
  return {
    name,
    tls,
    client,
    connect() {
      const call = client.Connect();
      const inbox: ServerMessageOut[] = [];
      const errors: grpc.ServiceError[] = [];
      call.on('data', (m: ServerMessageOut) => {
        const v = verifier.check(m);
        if (v.ok) inbox.push(v.message);
      });
      call.on('error', (e: grpc.ServiceError) => errors.push(e));
      return { call, inbox, errors, send: (m: AgentMessage) => call.write(m) };
    },
    close: () => client.close(),
  };
}
