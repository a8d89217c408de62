/**
 * The dashboard's WebSocket feed (/ws) with a `ws` client against a real
 * `drover server` (HTTPS, checked with its CA) and agents: auth, the fleet,
 * live run and step changes, logs, cancel by role, and clients that misbehave.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DroverClient } from '../../sdk/index.js';
import { startAgent, startServer, tempDir, workflowFile, waitFor, type ServerProc } from '../helpers/cluster.js';
import { dashboardUrl, FeedClient, get, type FeedMessage } from '../helpers/http-port.js';

const dir = tempDir('drover-feed-');

const workflow = (name: string, text: string) => workflowFile(dir, `${name}.yaml`, text);

const TWO_STEPS = workflow(
  'feed-two',
  `name: feed-two
steps:
  - id: a
    target: { labels: { role: w } }
    run: echo first-line; sleep 1.5; echo second-line
  - id: b
    needs: [a]
    target: { labels: { role: w } }
    run: echo from-b
`,
);
const LONG = workflow(
  'feed-long',
  `name: feed-long
steps:
  - id: wait
    target: { labels: { role: w } }
    run: sleep 60
`,
);

const CHATTY = workflow(
  'feed-chatty',
  `name: feed-chatty
steps:
  - id: talk
    target: { labels: { role: w } }
    run: for i in $(seq 1 2500); do printf '%01000d\\n' "$i"; done
`,
);

const ofType = (type: string) => (m: FeedMessage) => m.type === type;

describe('http - the WebSocket feed', () => {
  let server: ServerProc;
  let admin: DroverClient;
  let base: string;
  let viewer: string;
  let operator: { token: string; id: string };
  const clients: FeedClient[] = [];
  const open = () => {
    const c = new FeedClient(base, server.creds.caFile);
    clients.push(c);
    return c;
  };
  const authed = async (token: string) => {
    const c = open();
    await c.send({ type: 'auth', token });
    await c.next(ofType('hello'), 'hello');
    return c;
  };

  beforeAll(async () => {
    server = await startServer({ args: ['--http', '127.0.0.1:0', '--heartbeat-interval-ms', '500'] });
    base = await dashboardUrl(server);
    admin = new DroverClient(server.clientOptions);
    viewer = (await admin.access.createToken('viewer')).token;
    const op = await admin.access.createToken('operator');
    operator = { token: op.token, id: op.info.id };
    startAgent(server, 'w-1', { role: 'w' });
    startAgent(server, 'w-2', { role: 'w' });
    await waitFor(async () => (await admin.fleet.list()).filter((a) => a.state === 'connected' && a.heartbeat).length === 2, 30_000, () => 'two agents with a heartbeat');
  });
  afterAll(() => {
    for (const c of clients) c.close();
    admin?.close();
  });

  it('http - feed: a bad token is refused with UNAUTHENTICATED and close 4401, and so is a first message that is not auth', async () => {
    const bad = open();
    await bad.send({ type: 'auth', token: 'drover-api.abc.def' });
    const err = await bad.next(ofType('error'), 'the refusal');
    expect(err).toMatchObject({ code: 'UNAUTHENTICATED', message: 'refused: the token is not known to this control plane (wrong, or from another one)' });
    expect((await bad.closedWith()).code).toBe(4401);

    const skip = open();
    await skip.send({ type: 'subscribe', topic: 'fleet' });
    expect(await skip.next(ofType('error'), 'the refusal')).toMatchObject({ code: 'UNAUTHENTICATED', message: "the first message must be {type:'auth', token}" });
    expect((await skip.closedWith()).code).toBe(4401);
    expect(skip.messages.some((m) => m.type === 'fleet')).toBe(false);
  });

  it('http - feed: a token revoked while its feed is open loses the feed (close 4401) and gets nothing more', async () => {
    const { token, info } = await admin.access.createToken('viewer', { description: 'soon revoked' });
    const c = await authed(token);
    await c.send({ type: 'subscribe', topic: 'fleet' });
    await c.next(ofType('fleet'), 'the fleet snapshot');
    await admin.access.revokeToken(info.id);
    await c.send({ type: 'subscribe', topic: 'runs' });
    expect(await c.next(ofType('error'), 'the refusal')).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect((await c.closedWith()).code).toBe(4401);
    expect(c.messages.some((m) => m.type === 'runs')).toBe(false);
  });

  it('http - feed: hello names the role, and the fleet snapshot lists the agents, then live changes with sparkline samples', async () => {
    const c = open();
    await c.send({ type: 'auth', token: viewer });
    await c.send({ type: 'subscribe', topic: 'fleet' });
    expect(await c.next(ofType('hello'), 'hello')).toMatchObject({ type: 'hello', role: 'viewer' });
    const fleet = await c.next(ofType('fleet'), 'the fleet snapshot');
    const agents = fleet.agents as { name: string; state: string; transport: string; labels: Record<string, string> }[];
    expect(agents.map((a) => [a.name, a.state, a.transport, a.labels.role])).toEqual([
      ['w-1', 'AGENT_STATE_CONNECTED', 'grpc', 'w'],
      ['w-2', 'AGENT_STATE_CONNECTED', 'grpc', 'w'],
    ]);
    expect(fleet.devices).toEqual([]);
    const history = fleet.history as Record<string, { t: number; cpu: number; mem: number }[]>;
    expect(Object.keys(history).sort()).toEqual(['w-1', 'w-2']);
    expect(history['w-1'][0]).toEqual({ t: expect.any(Number), cpu: expect.any(Number), mem: expect.any(Number) });
    const change = await c.next((m) => m.type === 'agent' && !!m.sample, 'an agent change with a new sample');
    expect((change.agent as { name: string }).name).toMatch(/^w-[12]$/);
    expect((change.sample as { mem: number }).mem).toBeGreaterThan(0);
  });

  it("http - feed: a run's summary, detail and step changes arrive live, and its logs, stored lines first", async () => {
    const c = await authed(viewer);
    await c.send({ type: 'subscribe', topic: 'runs' });
    await c.next(ofType('runs'), 'the runs snapshot');
    const handle = await admin.runs.launch(TWO_STEPS);
    const summary = await c.next((m) => m.type === 'runSummary' && (m.run as { id: string }).id === handle.id, 'the new run in the runs feed');
    expect((summary.run as { workflow: string; steps: unknown[] }).workflow).toBe('feed-two');
    expect((summary.run as { steps: unknown[] }).steps).toEqual([]);

    const from = c.messages.length;
    await c.send({ type: 'subscribe', topic: 'run', id: handle.id });
    const detail = await c.next((m) => m.type === 'runDetail', 'the run detail', 15_000, from);
    expect((detail.run as { steps: { id: string; needs: string[] }[] }).steps.map((s) => [s.id, s.needs])).toEqual([
      ['a', []],
      ['b', ['a']],
    ]);
    await c.send({ type: 'subscribe', topic: 'logs', run: handle.id, step: '' });
    const stepOf = (id: string, status: string) => (m: FeedMessage) => m.type === 'step' && m.runId === handle.id && (m.step as { id: string; status: string }).id === id && (m.step as { status: string }).status === status;
    // a sleeps 1.5 s and b starts after it: their ends come after the subscription, live. (Changes of
    // one step within a batch are sent once, as they stand: b may be running and done in one.)
    await c.next(stepOf('a', 'STEP_STATUS_SUCCEEDED'), 'a succeeded', 20_000, from);
    await c.next(stepOf('b', 'STEP_STATUS_SUCCEEDED'), 'b succeeded', 20_000, from);
    await c.next((m) => m.type === 'runDetail' && (m.run as { status: string }).status === 'RUN_STATUS_SUCCEEDED', 'the run succeeded', 20_000, from);
    const texts = () =>
      c.messages
        .filter((m) => m.type === 'logs' && m.run === handle.id)
        .flatMap((m) => (m.lines as { stepId: string; text: string }[]).map((l) => `${l.stepId}:${l.text.trimEnd()}`));
    await waitFor(() => texts().includes('b:from-b'), 15_000, () => `b's log line; got ${texts().join(', ')}`);
    expect(texts().filter((t) => t.startsWith('a:'))).toEqual(['a:first-line', 'a:second-line']);
    const first = c.messages.find((m) => m.type === 'logs')!;
    expect(first).toMatchObject({ run: handle.id, step: '' });

    // Logs of one step, subscribed after the run: every stored line at once, in order.
    const later = c.messages.length;
    await c.send({ type: 'subscribe', topic: 'logs', run: handle.id, step: 'a' });
    const stored = await c.next((m) => m.type === 'logs' && m.step === 'a', 'the stored lines of a', 15_000, later);
    expect((stored.lines as { text: string; stream: string }[]).map((l) => [l.text, l.stream])).toEqual([
      ['first-line\n', 'LOG_STREAM_STDOUT'],
      ['second-line\n', 'LOG_STREAM_STDOUT'],
    ]);
  });

  it('http - feed: cancel is refused for a viewer token and done for an operator, audited as CancelRun', async () => {
    const handle = await admin.runs.launch(LONG);
    await waitFor(async () => (await admin.runs.get(handle.id)).steps[0].status === 'running', 20_000, () => 'the long step to run');
    const v = await authed(viewer);
    await v.send({ type: 'cancel', run: handle.id });
    expect(await v.next(ofType('error'), 'the refusal')).toMatchObject({ code: 'PERMISSION_DENIED', message: expect.stringContaining('this needs the operator role; token') });
    expect((await admin.runs.get(handle.id)).status).toBe('running');

    const o = await authed(operator.token);
    await o.send({ type: 'cancel', run: handle.id, reason: 'from the dashboard' });
    const done = await o.next(ofType('cancelled'), 'the cancel result');
    expect((done.run as { id: string }).id).toBe(handle.id);
    const ended = await handle.wait();
    expect(ended.status).toBe('cancelled');
    const records = await waitFor(async () => {
      const r = await admin.audit.list({ action: 'RunService/CancelRun' });
      return r.length >= 2 && r;
    }, 10_000, () => 'the audited cancels');
    expect(records.map((r) => [r.actorKind, r.result, r.target, r.from])).toEqual([
      ['token', 'PERMISSION_DENIED', handle.id, '127.0.0.1'],
      ['token', 'ok', handle.id, '127.0.0.1'],
    ]);
    expect(records[1].actor).toBe(operator.id);
    expect(records[1].detail).toEqual({ id: handle.id });
  });

  it('http - feed: errors name RUN_NOT_FOUND, an unknown topic and a bad stats window, and the connection stays', async () => {
    const c = await authed(viewer);
    await c.send({ type: 'subscribe', topic: 'run', id: 'r-nope' });
    expect(await c.next(ofType('error'), 'not found')).toMatchObject({ code: 'RUN_NOT_FOUND', message: 'no run with id "r-nope"' });
    await c.send({ type: 'subscribe', topic: 'weather' });
    expect(await c.next((m) => m.type === 'error' && m.code === 'BAD_REQUEST', 'bad topic')).toMatchObject({ message: '"topic" must be one of fleet, runs, run, logs, stats' });
    await c.send({ type: 'subscribe', topic: 'stats', windowMs: 'a day' });
    expect(await c.next((m) => m.type === 'error' && m.message === 'windowMs must be a whole number of milliseconds', 'bad window')).toMatchObject({ code: 'BAD_REQUEST' });
    await c.send({ type: 'subscribe', topic: 'stats', windowMs: 400 * 86_400_000 });
    expect(await c.next((m) => m.type === 'error' && m.code === 'INVALID_REQUEST', 'window too long')).toMatchObject({ message: expect.stringContaining('366 days') });
    await c.send({ type: 'subscribe', topic: 'runs' });
    await c.next(ofType('runs'), 'still served');
    expect(c.closed).toBeUndefined();
  });

  it('http - feed: stats on subscribe and again after a run ends, the same figures as the gRPC API', async () => {
    const c = await authed(viewer);
    await c.send({ type: 'subscribe', topic: 'stats', windowMs: 3_600_000 });
    const first = await c.next(ofType('stats'), 'the stats');
    const before = (first.stats as { overall: { runsEnded: number } }).overall.runsEnded;
    expect((first.stats as { toMs: number; fromMs: number }).toMs - (first.stats as { fromMs: number }).fromMs).toBe(3_600_000);
    await (await admin.runs.launch(TWO_STEPS)).wait();
    const again = await c.next((m) => m.type === 'stats' && (m.stats as { overall: { runsEnded: number } }).overall.runsEnded === before + 1, 'stats after the run ended', 15_000);
    const api = await admin.stats.get({ since: 3_600_000 });
    const feedTwo = (again.stats as { workflows: { workflow: string; runsSucceeded: number }[] }).workflows.find((w) => w.workflow === 'feed-two');
    expect(feedTwo?.runsSucceeded).toBe(api.workflows.find((w) => w.workflow === 'feed-two')?.runsSucceeded);
  });

  it('http - feed: garbage, oversized and flooding clients get errors or are closed, and the server serves on', async () => {
    const c = await authed(viewer);
    await c.send('{not json');
    expect(await c.next(ofType('error'), 'garbage refused')).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringMatching(/^not JSON: /) });
    await c.send('[1,2]');
    await c.send(JSON.stringify({ type: 'subscribe', topic: 'fleet', pad: 'x'.repeat(20_000) }));
    await c.send({ type: 'launch-missiles' });
    await waitFor(() => c.messages.filter((m) => m.type === 'error').length >= 4, 10_000, () => `four errors; got ${JSON.stringify(c.messages)}`);
    expect(c.messages.filter((m) => m.type === 'error').map((m) => m.message)).toEqual([
      expect.stringMatching(/^not JSON: /),
      'a message is a JSON object with a string "type"',
      expect.stringMatching(/^message of 200\d\d bytes is over the 16 KiB limit$/),
      'unknown message type "launch-missiles" (auth, subscribe, unsubscribe, cancel, decide)',
    ]);
    expect(c.closed).toBeUndefined();

    // Past the socket's own limit the connection is closed (1009), not buffered.
    const huge = await authed(viewer);
    await huge.send(JSON.stringify({ type: 'x', pad: 'x'.repeat(400_000) }));
    expect((await huge.closedWith()).code).toBe(1009);

    // A flood of messages: the excess is refused, the server stays up.
    const flood = await authed(viewer);
    for (let i = 0; i < 500; i++) await flood.send({ type: 'subscribe', topic: 'runs' });
    await flood.next(ofType('runs'), 'runs served under a flood');

    expect((await get(base, '/healthz', { ca: server.creds.caFile })).body).toBe('ok\n');
    const after = await authed(viewer);
    await after.send({ type: 'subscribe', topic: 'fleet' });
    expect(((await after.next(ofType('fleet'), 'the fleet after the abuse')).agents as unknown[]).length).toBe(2);
  });

  it('http - feed: a client that stops reading is dropped once 4 MiB wait for it, and the server serves on', async () => {
    const run = await (await admin.runs.launch(CHATTY)).wait();
    expect(run.status).toBe('succeeded');
    const slow = await authed(viewer);
    slow.pause();
    // Each answer is the last 2000 stored lines, about 2.3 MB of JSON.
    for (let i = 0; i < 12; i++) await slow.send({ type: 'subscribe', topic: 'logs', run: run.id, step: '' });
    await waitFor(() => server.output().includes('dashboard client too slow'), 20_000, () => 'the server to drop the slow client');
    slow.resume();
    expect([4408, 1006]).toContain((await slow.closedWith()).code);
    const after = await authed(viewer);
    await after.send({ type: 'subscribe', topic: 'logs', run: run.id, step: 'talk' });
    const lines = (await after.next(ofType('logs'), 'the logs after the slow client')).lines as { text: string }[];
    expect(lines.length).toBe(2000);
    expect(lines[1999].text).toBe(`${'2500'.padStart(1000, '0')}\n`);
  });

  it('http - feed: a client that never authenticates is closed with 4401 after 10 s', async () => {
    const c = open();
    await c.send('{}').catch(() => undefined);
    const closed = await c.closedWith(15_000);
    expect(closed.code).toBe(4401);
    expect(c.messages.find((m) => m.type === 'error' && m.code === 'UNAUTHENTICATED')?.message).toBe('no auth message within 10 s');
  }, 30_000);
});
