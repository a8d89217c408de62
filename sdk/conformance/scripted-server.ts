/**
 * A scripted control plane for `drover conformance agent`: a plaintext
 * AgentService on 127.0.0.1 (the agent under test runs with --insecure, so
 * nothing is enrolled or signed) that records every link and every message
 * the agent sends, and lets the checks answer message by message.
 */
import * as grpc from '@grpc/grpc-js';
import { droverV1, type AgentMessageOut, type ServerMessage } from '../../proto/index.js';

/** One Connect stream from the agent under test. */
export interface AgentStream {
  /** What the agent sent on it, in order. */
  received: AgentMessageOut[];
  ended: boolean;
  send(m: ServerMessage): void;
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

  static async start(): Promise<ScriptedServer> {
    const server = new grpc.Server();
    const streams: AgentStream[] = [];
    server.addService(droverV1().AgentService.service, {
      Connect(call: grpc.ServerDuplexStream<AgentMessageOut, ServerMessage>) {
        const s: AgentStream = {
          received: [],
          ended: false,
          send: (m) => {
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
      Enroll(_call: unknown, cb: grpc.sendUnaryData<never>) {
        cb({ code: grpc.status.UNIMPLEMENTED, details: 'the conformance kit checks agents started with --insecure: no enrollment' });
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
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
