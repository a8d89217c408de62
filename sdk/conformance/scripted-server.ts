/**
 * A scripted control plane for `drover conformance agent`: an AgentService
 * on 127.0.0.1 that records every link and every message the agent sends,
 * and lets the checks answer message by message. Plaintext (the agent runs
 * with --insecure: nothing enrolled or signed), or with a ScriptedPki: TLS,
 * Enroll, and control messages sealed as a real control plane seals them.
 */
import * as grpc from '@grpc/grpc-js';
import { droverV1, type AgentMessageOut, type EnrollRequestOut, type EnrollResponse, type ServerMessage } from '../../proto/index.js';
import type { ScriptedPki } from './scripted-pki.js';

/** The bodies a control plane must seal (docs/protocol.md, rule control-signed). */
const CONTROL = ['assign', 'release', 'cancel', 'drain', 'renewed', 'runFinished'] as const;

/** One Connect stream from the agent under test. */
export interface AgentStream {
  /** What the agent sent on it, in order. */
  received: AgentMessageOut[];
  ended: boolean;
  /** Sends `m`, sealed when it is a control message and the server signs. */
  send(m: ServerMessage): void;
  /** Sends `m` as it is: an unsigned control message, to see it refused. */
  sendRaw(m: ServerMessage): void;
  /** Ends the stream from this side, as a control plane that goes away does. */
  end(): void;
}

export class ScriptedServer {
  private constructor(
    private readonly server: grpc.Server,
    readonly address: string,
    /** Every link the agent opened, oldest first. */
    readonly streams: AgentStream[],
  ) {}

  static async start(pki?: ScriptedPki): Promise<ScriptedServer> {
    const server = new grpc.Server();
    const streams: AgentStream[] = [];
    server.addService(droverV1().AgentService.service, {
      Connect(call: grpc.ServerDuplexStream<AgentMessageOut, ServerMessage>) {
        const s: AgentStream = {
          received: [],
          ended: false,
          send: (m) => {
            const name = s.received[0]?.hello?.name ?? '';
            s.sendRaw(pki && CONTROL.some((b) => m[b] != null) ? pki.seal(name, m) : m);
          },
          sendRaw: (m) => {
            if (!s.ended) call.write(m);
          },
          end: () => {
            if (s.ended) return;
            s.ended = true;
            call.end();
          },
        };
        streams.push(s);
        call.on('data', (m: AgentMessageOut) => s.received.push(m));
        const gone = () => (s.ended = true);
        call.on('end', gone);
        call.on('error', gone);
        call.on('cancelled', gone);
      },
      Enroll(call: grpc.ServerUnaryCall<EnrollRequestOut, EnrollResponse>, cb: grpc.sendUnaryData<EnrollResponse>) {
        if (!pki) return cb({ code: grpc.status.UNIMPLEMENTED, details: 'this scripted control plane runs without --signed: start the agent with --insecure' });
        const { csrPem, name } = call.request;
        pki.issue(csrPem, name).then(
          (certificatePem) => cb(null, { status: 'ENROLL_STATUS_ISSUED', certificatePem, caPem: pki.caPem, controlKeyPem: pki.controlKeyPem, message: '', natsJwt: '' }),
          (err: Error) => cb({ code: grpc.status.INVALID_ARGUMENT, details: `cannot issue a certificate: ${err.message}` }),
        );
      },
    });
    const creds = pki
      ? grpc.ServerCredentials.createSsl(Buffer.from(pki.caPem), [{ cert_chain: Buffer.from(pki.serverCertPem + pki.caPem), private_key: Buffer.from(pki.serverKeyPem) }], false)
      : grpc.ServerCredentials.createInsecure();
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
    return new ScriptedServer(server, `127.0.0.1:${port}`, streams);
  }

  /** The newest link. */
  get current(): AgentStream | undefined {
    return this.streams.at(-1);
  }

  stop(): void {
    for (const s of this.streams) s.end();
    this.server.forceShutdown();
  }
}
