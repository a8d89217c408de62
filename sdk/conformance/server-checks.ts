/**
 * `drover conformance server`: drives a control plane as a scripted agent
 * and checks it rule by rule against docs/protocol.md. Each check names the
 * rule it checks; they run in order on one enrolled scripted agent (a check
 * that fails does not stop the others), and the result is a row per check.
 *
 * What it leaves behind on the control plane: one enrolled agent
 * (`conformance-<hex>`, disconnected at the end) and two runs of the
 * workflow `drover-conformance` (one succeeded, one cancelled).
 */
import { randomBytes } from 'node:crypto';
import type { AgentMessage, ServerMessageOut } from '../../proto/index.js';
import { DroverClient, resolveClientOptions, type ClientOptions } from '../client.js';
import { ScriptedAgent, type ScriptedLink } from './scripted-agent.js';

/** How long one expected answer may take. */
const ANSWER_MS = 10_000;
/** How long the checks wait to be sure something does not come. */
const QUIET_MS = 500;

export interface CheckResult {
  /** The rule's id in docs/protocol.md. */
  rule: string;
  check: string;
  ok: boolean;
  /** Why it failed ('' when it passed). */
  detail: string;
}

class CheckFailed extends Error {
  override name = 'CheckFailed';
}

function expect(cond: unknown, what: string): asserts cond {
  if (!cond) throw new CheckFailed(what);
}

async function waitFor<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = ANSWER_MS): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new CheckFailed(`no ${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Body = Exclude<ServerMessageOut['body'], undefined>;
const find = <B extends Body>(l: ScriptedLink, body: B, pred: (m: NonNullable<ServerMessageOut[B]>) => boolean = () => true) =>
  l.inbox.map((m) => m[body]).find((x): x is NonNullable<ServerMessageOut[B]> => x != null && pred(x as NonNullable<ServerMessageOut[B]>));

/** The state the checks share, in the order they run. */
interface Ctx {
  client: DroverClient;
  agent: ScriptedAgent;
  name: string;
  bootId: string;
  link?: ScriptedLink;
  runId?: string;
}

interface Check {
  rule: string;
  check: string;
  run(ctx: Ctx): Promise<void>;
}

const WORKFLOW = 'drover-conformance';

function hello(ctx: Ctx, over: Partial<NonNullable<AgentMessage['hello']>> = {}): AgentMessage {
  return { seq: 0, hello: { name: ctx.name, labels: { conformance: 'scripted' }, bootId: ctx.bootId, instanceId: `${ctx.name}-instance`, ...over } };
}

/** A new link that said Hello and was welcomed. */
async function welcomed(ctx: Ctx): Promise<{ link: ScriptedLink; appliedSeq: number }> {
  const link = ctx.agent.connect();
  link.send(hello(ctx));
  const w = await waitFor(() => find(link, 'welcome'), 'Welcome');
  ctx.link = link;
  return { link, appliedSeq: w.appliedSeq };
}

async function launch(ctx: Ctx): Promise<{ runId: string; link: ScriptedLink }> {
  const link = ctx.link!;
  const before = link.inbox.length;
  const run = await ctx.client.runs.launch({ name: WORKFLOW, steps: [{ id: 'm', target: { agent: ctx.name }, run: 'true' }] });
  const assign = await waitFor(() => link.inbox.slice(before).find((m) => m.assign?.runId === run.id)?.assign ?? undefined, `Assign of run ${run.id}`);
  expect(assign.steps.map((s) => s.id).join() === 'm', `the Assign should hold step m; it holds ${assign.steps.map((s) => s.id).join(', ') || 'nothing'}`);
  return { runId: run.id, link };
}

async function rejected(link: ScriptedLink, code: string, rule: string, seq: number) {
  const r = await waitFor(() => find(link, 'reject'), `Reject{${code}}`);
  expect(r.code === code && r.rule === rule && r.seq === seq, `expected Reject{code ${code}, rule ${rule}, seq ${seq}}; got Reject{code ${r.code}, rule ${r.rule || '""'}, seq ${r.seq}}: ${r.message}`);
  await waitFor(() => link.ended, 'close of the link after the Reject');
  expect(!find(link, 'ack', (a) => a.seq >= seq), `message ${seq} was refused but acknowledged`);
}

const event = (ctx: Ctx, runId: string, phase: string, over: Record<string, unknown> = {}) => ({
  runId,
  stepId: 'm',
  attempt: 1,
  attemptId: `${runId}/m/1/${ctx.name}`,
  phase: phase as NonNullable<AgentMessage['stepEvent']>['phase'],
  ...over,
});

const CHECKS: Check[] = [
  {
    rule: 'hello-first',
    check: 'a first message other than Hello gets Reject HELLO_REQUIRED',
    async run(ctx) {
      const l = ctx.agent.connect();
      l.send({ seq: 0, heartbeat: { atMs: Date.now() } });
      const r = await waitFor(() => find(l, 'reject'), 'Reject');
      expect(r.code === 'HELLO_REQUIRED', `expected HELLO_REQUIRED; got ${r.code}: ${r.message}`);
      l.close();
    },
  },
  {
    rule: 'identity-name',
    check: 'a Hello naming another agent than the certificate gets Reject BAD_NAME',
    async run(ctx) {
      const l = ctx.agent.connect();
      l.send(hello(ctx, { name: `${ctx.name}-someone-else` }));
      const r = await waitFor(() => find(l, 'reject'), 'Reject');
      expect(r.code === 'BAD_NAME', `expected BAD_NAME; got ${r.code}: ${r.message}`);
      l.close();
    },
  },
  {
    rule: 'welcome',
    check: 'Hello is answered by Welcome{agent_id = the name, applied_seq 0, a heartbeat interval}',
    async run(ctx) {
      const link = ctx.agent.connect();
      link.send(hello(ctx));
      const w = await waitFor(() => find(link, 'welcome'), 'Welcome');
      ctx.link = link;
      expect(w.agentId === ctx.name, `Welcome.agent_id is "${w.agentId}", not "${ctx.name}"`);
      expect(w.appliedSeq === 0, `Welcome.applied_seq of a new instance is ${w.appliedSeq}, not 0`);
      expect(w.heartbeatIntervalMs > 0, `Welcome.heartbeat_interval_ms is ${w.heartbeatIntervalMs}`);
    },
  },
  {
    rule: 'heartbeat',
    check: 'a Heartbeat (seq 0) reaches the fleet, unacknowledged',
    async run(ctx) {
      ctx.link!.send({ seq: 0, heartbeat: { atMs: Date.now(), cpuPercent: 12.5, runningSteps: 0 } });
      await waitFor(async () => (await ctx.client.fleet.get(ctx.name)).heartbeat?.cpuPercent === 12.5, 'heartbeat in the fleet');
      await sleep(QUIET_MS);
      expect(!find(ctx.link!, 'ack'), 'a heartbeat was acknowledged');
    },
  },
  {
    rule: 'control-signed',
    check: 'a run for the agent brings its slice as a signed Assign',
    async run(ctx) {
      const { runId, link } = await launch(ctx);
      ctx.runId = runId;
      expect(link.refused.length === 0, `control messages refused: ${link.refused.join('; ')}`);
    },
  },
  {
    rule: 'ack-durable',
    check: 'STARTED, a LogChunk and SUCCEEDED (seq 1, 2, 3) are acknowledged cumulatively and applied',
    async run(ctx) {
      const runId = ctx.runId!;
      const l = ctx.link!;
      const now = Date.now();
      l.send({ seq: 1, stepEvent: event(ctx, runId, 'STEP_PHASE_STARTED', { startedAtMs: now }) });
      l.send({ seq: 2, log: { runId, stepId: 'm', attemptId: `${runId}/m/1/${ctx.name}`, stream: 'LOG_STREAM_STDOUT', data: Buffer.from('hi\n'), atMs: now } });
      l.send({ seq: 3, stepEvent: event(ctx, runId, 'STEP_PHASE_SUCCEEDED', { startedAtMs: now, endedAtMs: now + 1, outputs: { k: 'v' } }) });
      await waitFor(() => find(l, 'ack', (a) => a.seq === 3), 'Ack{3}');
      const run = await waitFor(async () => {
        const r = await ctx.client.runs.get(runId);
        return r.status === 'succeeded' ? r : undefined;
      }, 'succeeded run');
      expect(run.steps[0].outputs.k === 'v', `the step's outputs are ${JSON.stringify(run.steps[0].outputs)}`);
    },
  },
  {
    rule: 'log-lines',
    check: 'the LogChunk "hi\\n" is stored as one line, "hi"',
    async run(ctx) {
      const lines: string[] = [];
      for await (const l of ctx.client.logs(ctx.runId!, 'm')) lines.push(l.text);
      expect(lines.length === 1 && lines[0] === 'hi', `the step's log is ${JSON.stringify(lines)}`);
    },
  },
  {
    rule: 'runfinished',
    check: 'the ended run is announced with a signed RunFinished',
    async run(ctx) {
      await waitFor(() => find(ctx.link!, 'runFinished', (r) => r.runId === ctx.runId), `RunFinished{${ctx.runId}}`);
    },
  },
  {
    rule: 'seq-duplicate',
    check: 'after a reconnect Welcome.applied_seq is 3; seq 3 sent again is acknowledged and changes nothing',
    async run(ctx) {
      ctx.link!.close();
      const { link, appliedSeq } = await welcomed(ctx);
      expect(appliedSeq === 3, `Welcome.applied_seq is ${appliedSeq}, not 3`);
      link.send({ seq: 3, stepEvent: event(ctx, ctx.runId!, 'STEP_PHASE_FAILED', { exitCode: 1, message: 'a duplicate' }) });
      await waitFor(() => find(link, 'ack', (a) => a.seq === 3), 'Ack{3}');
      expect((await ctx.client.runs.get(ctx.runId!)).status === 'succeeded', 'a duplicate changed the run');
    },
  },
  {
    rule: 'seq-gap',
    check: 'seq 5 after 3 gets Reject SEQ_GAP (rule seq-gap, seq 5), is not acknowledged, and the link closes',
    async run(ctx) {
      ctx.link!.send({ seq: 5, log: { runId: ctx.runId!, stepId: 'm', attemptId: `${ctx.runId}/m/1/${ctx.name}`, stream: 'LOG_STREAM_STDOUT', data: Buffer.from('late\n'), atMs: Date.now() } });
      await rejected(ctx.link!, 'SEQ_GAP', 'seq-gap', 5);
    },
  },
  {
    rule: 'event-order',
    check: 'SUCCEEDED of an attempt that never reported STARTED gets Reject EVENT_ORDER and is not applied',
    async run(ctx) {
      await welcomed(ctx);
      const { runId, link } = await launch(ctx);
      ctx.runId = runId;
      link.send({ seq: 4, stepEvent: event(ctx, runId, 'STEP_PHASE_SUCCEEDED', { endedAtMs: Date.now() }) });
      await rejected(link, 'EVENT_ORDER', 'event-order', 4);
      expect((await ctx.client.runs.get(runId)).status !== 'succeeded', 'the refused SUCCEEDED was applied');
    },
  },
  {
    rule: 'attempt-number',
    check: 'SUCCEEDED with attempt 0 gets Reject BAD_ATTEMPT',
    async run(ctx) {
      const { link } = await welcomed(ctx);
      link.send({ seq: 4, stepEvent: event(ctx, ctx.runId!, 'STEP_PHASE_SUCCEEDED', { attempt: 0, attemptId: '' }) });
      await rejected(link, 'BAD_ATTEMPT', 'attempt-number', 4);
    },
  },
  {
    rule: 'attempt-id',
    check: 'STARTED whose attempt_id names another agent gets Reject BAD_ATTEMPT',
    async run(ctx) {
      const { link } = await welcomed(ctx);
      link.send({ seq: 4, stepEvent: event(ctx, ctx.runId!, 'STEP_PHASE_STARTED', { attemptId: `${ctx.runId}/m/1/${ctx.name}-someone-else` }) });
      await rejected(link, 'BAD_ATTEMPT', 'attempt-id', 4);
    },
  },
  {
    rule: 'identity-newest',
    check: 'a newer link under the same identity wins; the older gets Reject REPLACED',
    async run(ctx) {
      const first = await welcomed(ctx);
      const second = await welcomed(ctx);
      const r = await waitFor(() => find(first.link, 'reject'), 'Reject on the older link');
      expect(r.code === 'REPLACED', `the older link got ${r.code}: ${r.message}`);
      await sleep(QUIET_MS);
      expect(!find(second.link, 'reject'), 'the newer link was rejected too');
      second.link.close();
    },
  },
];

/** Runs every check against the control plane `options` name (its API token needs the admin role: it makes an enrollment token). */
export async function checkServer(options: ClientOptions = {}): Promise<CheckResult[]> {
  const resolved = resolveClientOptions(options);
  if (resolved.insecure || !resolved.caPem) throw new Error('drover conformance server needs the control plane\'s CA (--ca or DROVER_CA): the scripted agent links over mTLS like any agent');
  const client = new DroverClient(options);
  const name = `conformance-${randomBytes(3).toString('hex')}`;
  try {
    const { token } = await client.access.createEnrollToken({ ttlMs: 5 * 60_000, uses: 1, description: `drover conformance server (${name})` });
    const agent = await ScriptedAgent.enroll(resolved.address, resolved.caPem, token, name);
    const ctx: Ctx = { client, agent, name, bootId: randomBytes(8).toString('hex') };
    const results: CheckResult[] = [];
    try {
      for (const c of CHECKS) {
        try {
          await c.run(ctx);
          results.push({ rule: c.rule, check: c.check, ok: true, detail: '' });
        } catch (err) {
          results.push({ rule: c.rule, check: c.check, ok: false, detail: (err as Error).message });
        }
      }
    } finally {
      ctx.link?.close();
      if (ctx.runId) await client.runs.cancel(ctx.runId, 'drover conformance server is done').catch(() => undefined);
      agent.close();
    }
    return results;
  } finally {
    client.close();
  }
}
