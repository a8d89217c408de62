/**
 * The agent link over NATS (docs/nats.md). A session is: subscribe to
 * `drover.v1.agent.<name>.down`, then publish on `drover.v1.agent.<name>.up`
 * with a fresh `Drover-Session` header and a `Drover-Seq` counter; only down
 * messages echoing that session id belong to it. The session ends (and the
 * Connection says Hello again after its backoff) when:
 *
 * - the NATS connection drops or closes (core NATS loses messages then);
 * - a down message is missing (a gap in `Drover-Seq`);
 * - the control plane signals the end (`Drover-Close`: it restarted, replaced
 *   or timed out the session);
 * - the NATS server answers the Hello with "503 no responders" (no control
 *   plane is subscribed);
 * - no Welcome arrives in time (the Connection's timer).
 *
 * nats.js discards what is published while it reconnects, so a session opened
 * meanwhile holds its Hello until the connection is back.
 *
 * The NATS connection is built by main.ts and injected.
 */
import { randomUUID } from 'node:crypto';
import { headers, type NatsConnection } from '@nats-io/nats-core';
import { decodeMessage, encodeMessage, type AgentMessage, type ServerMessageOut } from '../../proto/index.js';
import { downSubject, NATS_HEADER, upSubject } from '../../proto/nats.js';
import type { Logger } from '../log.js';
import type { AgentLink, LinkHandlers, LinkSession } from './link.js';

interface OpenSession {
  end(reason: string): void;
  /** Sends what was held while NATS was reconnecting. */
  resume(): void;
}

/** Messages a session holds while NATS reconnects (only its Hello, in practice). */
const MAX_HELD = 16;

/** This agent's end of the NATS link: one session at a time, each a fresh Drover-Session. */
export class NatsLink implements AgentLink {
  readonly address: string;
  private current: OpenSession | undefined;
  /** nats.js discards what is published while it reconnects, so sessions hold their Hello until then. */
  private connected = true;

  /**
   * @param nc a connected NATS connection (main.ts builds it, reconnecting forever)
   * @param agent this agent's name: it picks the subjects
   */
  constructor(
    private readonly nc: NatsConnection,
    private readonly agent: string,
    private readonly log: Logger,
  ) {
    this.address = `${nc.getServer()} (${upSubject(agent)})`;
    void this.watch();
  }

  private async watch() {
    for await (const s of this.nc.status()) {
      if (s.type === 'disconnect') {
        this.connected = false;
        this.current?.end(`NATS connection to ${s.server} lost`);
      } else if (s.type === 'reconnect') {
        this.connected = true;
        this.current?.resume();
      }
    }
    this.current?.end('NATS connection closed');
  }

  open(handlers: LinkHandlers): LinkSession {
    const { nc, agent, log } = this;
    const sid = randomUUID();
    let sent = 0;
    let received = 0;
    let welcomed = false;
    let closed = false;
    const held: AgentMessage[] = [];
    let unsubscribe = () => {};
    const end = (reason: string) => {
      if (closed) return;
      closed = true;
      unsubscribe();
      if (this.current === session) this.current = undefined;
      // After the caller's current step, like a gRPC stream's events.
      setImmediate(() => handlers.onClose(reason));
    };
    const publish = (msg: AgentMessage) => {
      let data: Uint8Array;
      try {
        data = encodeMessage('AgentMessage', msg);
      } catch (err) {
        log.error({ seq: msg.seq, err: (err as Error).message }, 'message dropped: cannot encode it');
        return;
      }
      const h = headers();
      h.set(NATS_HEADER.session, sid);
      h.set(NATS_HEADER.seq, String(sent + 1));
      try {
        // Hello names the down subject as reply: with nothing subscribed to the up subject
        // the NATS server answers "503 no responders" there at once, instead of silence.
        nc.publish(upSubject(agent), data, { headers: h, ...(msg.hello ? { reply: downSubject(agent) } : {}) });
        sent++;
      } catch (err) {
        if (!/max_payload/.test((err as Error).message)) return end(`cannot publish to NATS: ${(err as Error).message}`);
        // Nothing the link can do: resending would fail the same way. Log chunks are
        // cut far below any sane max_payload; this takes a huge StepEvent.
        log.error(
          { seq: msg.seq, body: Object.keys(msg).find((k) => k !== 'seq' && k !== 'body'), bytes: data.length, maxPayload: nc.info?.max_payload },
          `message dropped: ${data.length} bytes is over the NATS server's max_payload (${nc.info?.max_payload}); raise max_payload in the nats-server configuration`,
        );
      }
    };
    const session: OpenSession = {
      end,
      resume() {
        while (!closed && held.length) publish(held.shift()!);
      },
    };
    this.current = session;

    try {
      if (nc.isClosed()) throw new Error('the NATS connection is closed');
      const sub = nc.subscribe(downSubject(agent), {
        callback: (err, msg) => {
          if (err) return end(`NATS subscription to ${downSubject(agent)} failed: ${err.message}`);
          const h = msg.headers;
          if (closed || !h) return;
          if (h.code === 503 && !h.has(NATS_HEADER.session)) {
            // The server's "no responders" answer to a Hello (it carries this subject as reply).
            if (!welcomed) end(`no control plane is listening on ${upSubject(agent)}: is drover server running with --nats on this NATS server and account?`);
            return;
          }
          if (h.get(NATS_HEADER.session) !== sid) return; // another session's traffic
          if (h.has(NATS_HEADER.close)) return end(`the control plane closed the session: ${h.get(NATS_HEADER.close)}`);
          const seq = Number(h.get(NATS_HEADER.seq));
          if (seq !== received + 1) return end(`message from the control plane lost in transit (expected #${received + 1}, got #${seq})`);
          received = seq;
          let m: ServerMessageOut;
          try {
            m = decodeMessage<ServerMessageOut>('ServerMessage', msg.data);
          } catch (e) {
            return end(`undecodable message from the control plane (${msg.data.length} bytes): ${(e as Error).message}`);
          }
          if (m.body === 'welcome') welcomed = true;
          handlers.onMessage(m);
        },
      });
      unsubscribe = () => sub.unsubscribe();
    } catch (err) {
      end(`cannot subscribe to ${downSubject(agent)}: ${(err as Error).message}`);
    }

    return {
      send: (msg: AgentMessage) => {
        if (closed) return;
        if (this.connected) return publish(msg);
        if (held.length < MAX_HELD) held.push(msg);
      },
      close() {
        end('closed by agent');
      },
    };
  }
}
