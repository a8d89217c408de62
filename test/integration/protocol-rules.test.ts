/**
 * The rules of docs/protocol.md the control plane enforces, against a real
 * control plane, driven by a hand-written agent (test/helpers/raw-agent.ts):
 * each broken rule is answered with a Reject naming it, applies nothing and
 * is counted in /metrics; RunFinished tells an agent what it may forget.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentMessage, ServerMessageOut } from '../../proto/index.js';
import { DroverClient } from '../../sdk/index.js';
import { startServer, tempDir, workflowFile, waitFor, type ServerProc } from '../helpers/cluster.js';
import { dashboardUrl, sample, scrape } from '../helpers/http-port.js';
import { rawAgent, type RawAgent } from '../helpers/raw-agent.js';

const dir = tempDir('drover-protocol-rules-');
const NAME = 'rules';

describe('protocol rules - enforced by the control plane', () => {
  let server: ServerProc;
  let admin: DroverClient;
  let raw: RawAgent;
  let base: string;
  const hello = (over: Partial<NonNullable<AgentMessage['hello']>> = {}): AgentMessage => ({
    seq: 0,
    hello: { name: NAME, labels: { role: NAME }, bootId: 'b1', instanceId: 'i1', ...over },
  });

  /** A new link that said Hello and got its Welcome. */
  async function link(over: Partial<NonNullable<AgentMessage['hello']>> = {}) {
    const l = raw.connect();
    l.send(hello(over));
    const welcome = await waitFor(() => l.inbox.find((m) => m.welcome)?.welcome ?? undefined, 10_000, () => 'welcome');
    return { ...l, welcome };
  }

  const rejectOf = (inbox: ServerMessageOut[]) => waitFor(() => inbox.find((m) => m.reject)?.reject ?? undefined, 10_000, () => 'a reject');

  beforeAll(async () => {
    server = await startServer({ args: ['--http', '127.0.0.1:0'] });
    admin = new DroverClient(server.clientOptions);
    raw = await rawAgent(server, NAME);
    base = await dashboardUrl(server);
  });
  afterAll(async () => {
    raw?.close();
    admin?.close();
    await server?.stop();
  });

  it('protocol rules - a terminal event with no STARTED, a seq gap and a SUCCEEDED with attempt 0 are each refused with a Reject naming the rule, applied nowhere, counted in /metrics', async () => {
    let l = await link();
    const file = workflowFile(dir, 'rules.yaml', `name: rules\nsteps:\n  - { id: m, target: { agent: ${NAME} }, run: 'true' }\n`);
    const run = await admin.runs.launch(file);
    const assign = await waitFor(() => l.inbox.find((m) => m.assign)?.assign ?? undefined, 10_000, () => 'assign');
    const base1 = { runId: assign.runId, stepId: 'm', attemptId: `${assign.runId}/m/1/${NAME}`, attempt: 1 };

    l.send({ seq: 1, stepEvent: { ...base1, phase: 'STEP_PHASE_SUCCEEDED', endedAtMs: Date.now() } });
    expect(await rejectOf(l.inbox)).toEqual({
      code: 'EVENT_ORDER',
      rule: 'event-order',
      seq: 1,
      message: `message 1 refused: SUCCEEDED for attempt ${base1.attemptId}, which never reported STARTED: an attempt's first event is STARTED (docs/protocol.md, rule event-order)`,
    });
    expect(l.inbox.some((m) => m.ack)).toBe(false);
    // Nothing of it applied: the step is still waiting for its start.
    expect((await admin.runs.get(run.id)).steps[0]).toMatchObject({ status: 'pending', attempts: [] });

    l = await link();
    expect(l.welcome.appliedSeq).toBe(0);
    l.send({ seq: 1, stepEvent: { ...base1, phase: 'STEP_PHASE_STARTED', startedAtMs: Date.now() } });
    await waitFor(() => l.inbox.some((m) => m.ack?.seq === 1), 10_000, () => 'ack of seq 1');
    l.send({ seq: 3, stepEvent: { ...base1, phase: 'STEP_PHASE_SUCCEEDED', endedAtMs: Date.now() } });
    expect(await rejectOf(l.inbox)).toMatchObject({ code: 'SEQ_GAP', rule: 'seq-gap', seq: 3, message: expect.stringMatching(/^message 3 refused: seq 3 after 1: seqs grow by one; messages 2\.\.2 are missing/) });

    l = await link();
    expect(l.welcome.appliedSeq).toBe(1);
    l.send({ seq: 2, stepEvent: { ...base1, attempt: 0, attemptId: '', phase: 'STEP_PHASE_SUCCEEDED', endedAtMs: Date.now() } });
    expect(await rejectOf(l.inbox)).toMatchObject({ code: 'BAD_ATTEMPT', rule: 'attempt-number', seq: 2, message: expect.stringMatching(/a SUCCEEDED event must name an attempt/) });
    expect((await admin.runs.get(run.id)).status).toBe('running');

    const m = await scrape(base, server.creds.token, server.creds.caFile);
    for (const code of ['EVENT_ORDER', 'SEQ_GAP', 'BAD_ATTEMPT']) expect(sample(m, 'drover_agent_protocol_violations_total', { code })).toBe(1);
    expect(server.output()).toMatch(/agent message refused, nothing of it applied: it breaks rule event-order of docs\/protocol\.md/);

    // The same messages, by the rules: applied.
    l = await link();
    l.send({ seq: 2, stepEvent: { ...base1, phase: 'STEP_PHASE_SUCCEEDED', endedAtMs: Date.now(), outputs: { k: 'v' } } });
    await waitFor(() => l.inbox.some((m) => m.ack?.seq === 2), 10_000, () => 'ack of seq 2');
    const done = await run.wait();
    expect(done.status).toBe('succeeded');
    expect(done.steps[0].attempts.map((a) => [a.id, a.status])).toEqual([[base1.attemptId, 'succeeded']]);

    // The run ended: the agent is told, signed (raw-agent keeps only what verifies).
    await waitFor(() => l.inbox.find((x) => x.runFinished?.runId === run.id), 10_000, () => 'RunFinished');
    l.call.cancel();
  });

  it('protocol rules - a Hello listing finished attempts gets a RunFinished for each ended run it names, none for an unknown or running one', async () => {
    const file = workflowFile(dir, 'rules-finished.yaml', `name: rules-finished\nsteps:\n  - { id: m, target: { agent: ${NAME} }, run: 'true' }\n`);
    let l = await link();
    const run = await admin.runs.launch(file);
    const assign = await waitFor(() => l.inbox.find((m) => m.assign)?.assign ?? undefined, 10_000, () => 'assign');
    const ended = (await admin.runs.list()).find((r) => r.status === 'succeeded' && r.id !== run.id)!;
    l.call.cancel();
    l = await link({ finishedAttempts: [`${ended.id}/m/1/${NAME}`, `r-000000-000000-00000000/m/1/${NAME}`, `${assign.runId}/m/1/${NAME}`, 'garbage'] });
    await waitFor(() => l.inbox.find((x) => x.runFinished), 10_000, () => 'RunFinished');
    await new Promise((r) => setTimeout(r, 300));
    expect(l.inbox.filter((x) => x.runFinished).map((x) => x.runFinished!.runId)).toEqual([ended.id]);
    await admin.runs.cancel(run.id, 'done with it');
    l.call.cancel();
  });

  it('protocol rules - duplicate identity: a newer link of the same process replaces the older, which gets Reject REPLACED', async () => {
    const first = await link();
    const second = await link();
    expect(await rejectOf(first.inbox)).toEqual({
      code: 'REPLACED',
      rule: '',
      seq: 0,
      message: expect.stringMatching(/^a newer connection of this agent process \("rules"\) from \S+ replaced this one$/),
    });
    expect(second.inbox.some((m) => m.reject)).toBe(false);
    expect((await admin.fleet.get(NAME)).state).toBe('connected');
    const third = raw.connect();
    third.send(hello({ bootId: 'b2' }));
    expect(await rejectOf(second.inbox)).toMatchObject({ code: 'REPLACED', message: expect.stringMatching(/^another process with this agent's identity \("rules"\) connected from/) });
    third.call.cancel();
  });
});
