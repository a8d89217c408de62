/**
 * The NATS agent link's session rules on both ends, against an in-memory
 * stand-in for a NATS connection (no sockets): session headers, gap
 * detection, close signals, replacement, the idle timeout, "no responders"
 * and holding the Hello while NATS reconnects. The real-server behaviour is
 * covered by test/integration/transport-conformance.test.ts.
 */
import { headers, type Msg, type MsgCallback, type MsgHdrs, type NatsConnection, type Status } from '@nats-io/nats-core';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { NatsLink } from '../../agent/link/nats-link.js';
import type { AgentConnection, AgentLinkHandler } from '../../control-plane/transport/agent-link.js';
import { NatsAgentLink } from '../../control-plane/transport/nats-agent-link.js';
import { decodeMessage, encodeMessage, type AgentMessage, type AgentMessageOut, type ServerMessageOut } from '../../proto/index.js';
import { downSubject, NATS_HEADER, upSubject } from '../../proto/nats.js';

interface Published {
  subject: string;
  data: Uint8Array;
  headers?: MsgHdrs;
  reply?: string;
}

/** Just enough of NatsConnection for the links: subscribe, publish, status. */
class FakeNats {
  published: Published[] = [];
  subs = new Map<string, MsgCallback<Msg>>();
  maxPayload = 1024 * 1024;
  private statusQueue: Status[] = [];
  private wake: (() => void) | undefined;

  subscribe(subject: string, opts: { callback: MsgCallback<Msg> }) {
    this.subs.set(subject, opts.callback);
    return { unsubscribe: () => this.subs.delete(subject) };
  }
  publish(subject: string, data: Uint8Array, opts: { headers?: MsgHdrs; reply?: string } = {}) {
    if (data.length > this.maxPayload) throw new Error("'payload' max_payload size exceeded");
    this.published.push({ subject, data, headers: opts.headers, reply: opts.reply });
  }
  async flush() {}
  getServer() {
    return '127.0.0.1:4222';
  }
  isClosed() {
    return false;
  }
  get info() {
    return { max_payload: this.maxPayload };
  }
  status(): AsyncIterable<Status> {
    return {
      [Symbol.asyncIterator]: () => ({
        next: async () => {
          while (!this.statusQueue.length) await new Promise<void>((r) => (this.wake = r));
          return { value: this.statusQueue.shift()!, done: false };
        },
      }),
    };
  }
  emitStatus(s: Status) {
    this.statusQueue.push(s);
    this.wake?.();
  }
  /** Delivers a message to the subscription matching `subject` (exact, or the agent wildcard). */
  deliver(subject: string, data: Uint8Array, h?: MsgHdrs) {
    const cb = this.subs.get(subject) ?? (subject.startsWith('drover.v1.agent.') ? this.subs.get('drover.v1.agent.>') : undefined);
    cb?.(null, { subject, data, headers: h } as Msg);
  }
  asConnection(): NatsConnection {
    return this as unknown as NatsConnection;
  }
}

const silent = pino({ level: 'silent' });
const tick = () => new Promise((r) => setImmediate(r));

function hdrs(sid: string, seq?: number, extra: Record<string, string> = {}): MsgHdrs {
  const h = headers();
  h.set(NATS_HEADER.session, sid);
  if (seq !== undefined) h.set(NATS_HEADER.seq, String(seq));
  for (const [k, v] of Object.entries(extra)) h.set(k, v);
  return h;
}

const helloMsg = (name: string): AgentMessage => ({ seq: 0, hello: { name, bootId: 'b' } });
const heartbeatMsg: AgentMessage = { seq: 0, heartbeat: { cpuPercent: 1 } };

/** Records what the control-plane side hands to its handler; answers every Hello with Welcome. */
function recordingHandler() {
  const events: string[] = [];
  const conns: AgentConnection[] = [];
  const handler: AgentLinkHandler = {
    onMessage(conn, msg: AgentMessageOut) {
      if (!conns.includes(conn)) conns.push(conn);
      events.push(`${conns.indexOf(conn)}:${msg.body}`);
      if (msg.body === 'hello') conn.send({ welcome: { agentId: msg.hello!.name, appliedSeq: 0, heartbeatIntervalMs: 1000 } });
    },
    onClose(conn) {
      events.push(`${conns.indexOf(conn)}:closed`);
    },
  };
  return { events, conns, handler };
}

describe('nats link - control plane side', () => {
  function setup(heartbeatIntervalMs = 60_000) {
    const nc = new FakeNats();
    const rec = recordingHandler();
    const link = new NatsAgentLink(nc.asConnection(), rec.handler, { heartbeatIntervalMs, log: silent });
    void link.start();
    const up = (name: string, msg: AgentMessage, sid: string, seq: number) => nc.deliver(upSubject(name), encodeMessage('AgentMessage', msg), hdrs(sid, seq));
    const down = (name: string) => nc.published.filter((p) => p.subject === downSubject(name));
    return { nc, link, up, down, ...rec };
  }

  it('nats link - a Hello opens a session: replies echo its session id and count from 1', () => {
    const { up, down, events, conns } = setup();
    up('web.1', helloMsg('web.1'), 's1', 1);
    up('web.1', heartbeatMsg, 's1', 2);
    expect(events).toEqual(['0:hello', '0:heartbeat']);
    expect(conns[0]).toMatchObject({ transport: 'nats', peer: 'drover.v1.agent.web.1.up@127.0.0.1:4222' });
    conns[0].send({ ack: { seq: 3 } });
    expect(down('web.1').map((p) => [p.headers!.get(NATS_HEADER.session), p.headers!.get(NATS_HEADER.seq)])).toEqual([
      ['s1', '1'],
      ['s1', '2'],
    ]);
    expect(decodeMessage<ServerMessageOut>('ServerMessage', down('web.1')[0].data).welcome).toMatchObject({ agentId: 'web.1' });
  });

  it('nats link - a gap in Drover-Seq ends the session and tells the agent why', async () => {
    const { up, down, events } = setup();
    up('a', helloMsg('a'), 's1', 1);
    up('a', heartbeatMsg, 's1', 3);
    await tick();
    expect(events).toEqual(['0:hello', '0:closed']);
    const last = down('a').at(-1)!;
    expect(last.data.length).toBe(0);
    expect(last.headers!.get(NATS_HEADER.close)).toBe('message lost in transit (expected #2, got #3); say Hello again');
  });

  it('nats link - a message for an unknown session gets one close signal, not one per message', () => {
    const { up, down, events } = setup();
    up('a', heartbeatMsg, 'old', 7);
    up('a', heartbeatMsg, 'old', 8);
    expect(events).toEqual([]);
    expect(down('a')).toHaveLength(1);
    expect(down('a')[0].headers!.get(NATS_HEADER.session)).toBe('old');
    expect(down('a')[0].headers!.get(NATS_HEADER.close)).toMatch(/^unknown session \(the control plane restarted, or ended it earlier\)/);
  });

  it('nats link - a newer Hello replaces the session: the old connection closes, its messages are refused', async () => {
    const { up, down, events } = setup();
    up('a', helloMsg('a'), 's1', 1);
    up('a', helloMsg('a'), 's2', 1);
    up('a', heartbeatMsg, 's1', 2);
    up('a', heartbeatMsg, 's2', 2);
    await tick();
    expect(events).toEqual(['0:hello', '1:hello', '1:heartbeat', '0:closed']);
    expect(down('a').filter((p) => p.headers!.get(NATS_HEADER.session) === 's1').map((p) => p.headers!.get(NATS_HEADER.close))).toEqual([
      '', // Welcome
      'replaced by a newer Hello from this agent',
      'unknown session (the control plane restarted, or ended it earlier); say Hello again',
    ]);
  });

  it('nats link - a session with no message for 3 heartbeat intervals ends', async () => {
    const { up, events, down } = setup(20);
    up('a', helloMsg('a'), 's1', 1);
    await new Promise((r) => setTimeout(r, 40));
    up('a', heartbeatMsg, 's1', 2); // keeps it alive
    await new Promise((r) => setTimeout(r, 40));
    expect(events).toEqual(['0:hello', '0:heartbeat']);
    await new Promise((r) => setTimeout(r, 60));
    expect(events).toEqual(['0:hello', '0:heartbeat', '0:closed']);
    expect(down('a').at(-1)!.headers!.get(NATS_HEADER.close)).toBe('no message from the agent for 3 heartbeat intervals (60 ms)');
  });

  it('nats link - a Hello naming another agent is rejected with BAD_NAME and opens nothing', () => {
    const { up, down, events } = setup();
    up('intruder', helloMsg('victim'), 's1', 1);
    expect(events).toEqual([]);
    const reply = decodeMessage<ServerMessageOut>('ServerMessage', down('intruder')[0].data);
    expect(reply.reject).toEqual({
      code: 'BAD_NAME',
      message: 'Hello names agent "victim" but came on drover.v1.agent.intruder.up; an agent publishes only on its own subject',
      rule: '',
      seq: 0,
    });
  });

  it('nats link - messages without session headers, or not protobuf, are dropped and do not break the session', () => {
    const { nc, up, events } = setup();
    up('a', helloMsg('a'), 's1', 1);
    nc.deliver(upSubject('a'), encodeMessage('AgentMessage', heartbeatMsg));
    nc.deliver(upSubject('a'), new Uint8Array([0xff, 0xff, 0xff]), hdrs('s1', 2));
    up('a', heartbeatMsg, 's1', 3);
    expect(events).toEqual(['0:hello', '0:heartbeat']);
  });

  it('nats link - a reply over max_payload is dropped with an error, and later replies keep counting without a gap', () => {
    const { nc, up, down, conns } = setup();
    up('a', helloMsg('a'), 's1', 1);
    nc.maxPayload = 100;
    conns[0].send({ release: { runId: 'r', stepId: 's', outputs: { big: 'x'.repeat(200) } } });
    conns[0].send({ ack: { seq: 1 } });
    expect(down('a').map((p) => p.headers!.get(NATS_HEADER.seq))).toEqual(['1', '2']);
  });
});

describe('nats link - agent side', () => {
  function setup() {
    const nc = new FakeNats();
    const link = new NatsLink(nc.asConnection(), 'web-1', silent);
    const got: string[] = [];
    const closed: string[] = [];
    const session = link.open({ onMessage: (m) => got.push(m.body ?? ''), onClose: (r) => closed.push(r) });
    session.send(helloMsg('web-1'));
    const hello = nc.published[0];
    const sid = hello?.headers?.get(NATS_HEADER.session) ?? '';
    const down = (msg: object, seq: number, s = sid) => nc.deliver(downSubject('web-1'), encodeMessage('ServerMessage', msg), hdrs(s, seq));
    return { nc, link, session, got, closed, sid, hello, down };
  }

  it('nats link - Hello goes up with a session id, seq 1 and the down subject as reply', () => {
    const { hello, sid } = setup();
    expect(hello.subject).toBe('drover.v1.agent.web-1.up');
    expect(hello.reply).toBe('drover.v1.agent.web-1.down');
    expect(sid).toMatch(/^[0-9a-f-]{36}$/);
    expect(hello.headers!.get(NATS_HEADER.seq)).toBe('1');
  });

  it('nats link - only messages of this session are delivered, in Drover-Seq order', async () => {
    const { got, closed, down } = setup();
    down({ welcome: { agentId: 'web-1' } }, 1);
    down({ ack: { seq: 1 } }, 1, 'someone-else');
    down({ ack: { seq: 2 } }, 2);
    expect(got).toEqual(['welcome', 'ack']);
    down({ ack: { seq: 3 } }, 4);
    await tick();
    expect(got).toEqual(['welcome', 'ack']);
    expect(closed).toEqual(['message from the control plane lost in transit (expected #3, got #4)']);
  });

  it('nats link - a close signal from the control plane ends the session with its reason', async () => {
    const { nc, closed, sid } = setup();
    nc.deliver(downSubject('web-1'), new Uint8Array(0), hdrs(sid, undefined, { [NATS_HEADER.close]: 'unknown session' }));
    await tick();
    expect(closed).toEqual(['the control plane closed the session: unknown session']);
  });

  it('nats link - "no responders" to the Hello ends the session at once; after Welcome it is ignored', async () => {
    const first = setup();
    first.nc.deliver(downSubject('web-1'), new Uint8Array(0), headers(503, 'No Responders'));
    await tick();
    expect(first.closed).toEqual([
      'no control plane is listening on drover.v1.agent.web-1.up: is drover server running with --nats on this NATS server and account?',
    ]);

    const second = setup();
    second.down({ welcome: { agentId: 'web-1' } }, 1);
    second.nc.deliver(downSubject('web-1'), new Uint8Array(0), headers(503, 'No Responders'));
    await tick();
    expect(second.closed).toEqual([]);
  });

  it('nats link - a NATS disconnect ends the session; a session opened while reconnecting holds its Hello until NATS is back', async () => {
    const { nc, link, closed } = setup();
    nc.emitStatus({ type: 'disconnect', server: '127.0.0.1:4222' });
    await tick();
    await tick();
    expect(closed).toEqual(['NATS connection to 127.0.0.1:4222 lost']);
    const before = nc.published.length;
    const again = link.open({ onMessage: () => undefined, onClose: () => undefined });
    again.send(helloMsg('web-1'));
    expect(nc.published.length).toBe(before);
    nc.emitStatus({ type: 'reconnect', server: '127.0.0.1:4222' });
    await tick();
    await tick();
    expect(nc.published.length).toBe(before + 1);
    expect(decodeMessage<AgentMessageOut>('AgentMessage', nc.published.at(-1)!.data).body).toBe('hello');
  });

  it('nats link - a message over max_payload is dropped with an error; the session and its numbering go on', () => {
    const { nc, session, closed } = setup();
    nc.maxPayload = 200;
    session.send({ seq: 5, log: { runId: 'r', stepId: 's', data: Buffer.alloc(500) } });
    session.send({ seq: 6, log: { runId: 'r', stepId: 's', data: Buffer.from('ok') } });
    expect(closed).toEqual([]);
    expect(nc.published.map((p) => p.headers!.get(NATS_HEADER.seq))).toEqual(['1', '2']);
  });
});
