/**
 * `drover conformance agent -- COMMAND…`: starts an agent command against a
 * scripted control plane (scripted-server.ts) and checks it rule by rule
 * against docs/protocol.md. The command's arguments may hold `{addr}` (the
 * scripted control plane's address) and `{dir}` (a fresh state dir). Without
 * `signed` the agent links in plaintext (drover agent: --insecure) and the
 * signing rule is reported skipped; with it, the agent enrolls with `{token}`
 * (an enrollment token of a throwaway CA, scripted-pki.ts), every control
 * message is sealed, and an unsigned Assign must be refused. Checks run in
 * order on the one agent process; a failed check does not stop the others.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentMessageOut, PlanStep, StepEventOut } from '../../proto/index.js';
import type { CheckResult } from './server-checks.js';
import { ScriptedPki } from './scripted-pki.js';
import { ScriptedServer, type AgentStream } from './scripted-server.js';

/** How long one expected message may take (a step's start included). */
const ANSWER_MS = 15_000;
/** The heartbeat interval the scripted control plane asks for. */
const HEARTBEAT_MS = 300;

export type AgentCheckResult = CheckResult & { skipped?: boolean };

class CheckFailed extends Error {
  override name = 'CheckFailed';
}

function expect(cond: unknown, what: string): asserts cond {
  if (!cond) throw new CheckFailed(what);
}

async function waitFor<T>(fn: () => T | undefined | false, what: string, ms = ANSWER_MS): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new CheckFailed(`no ${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface Ctx {
  server: ScriptedServer;
  agent: ChildProcess;
  output: () => string;
  name: string;
  /** Sequenced messages received so far, by seq (first copy). */
  bySeq: Map<number, AgentMessageOut>;
  work: string;
}

/** Every sequenced message of every link, recorded by seq. */
function collect(ctx: Ctx): AgentMessageOut[] {
  for (const s of ctx.server.streams) for (const m of s.received) if (m.seq > 0 && !ctx.bySeq.has(m.seq)) ctx.bySeq.set(m.seq, m);
  return [...ctx.bySeq.values()].sort((a, b) => a.seq - b.seq);
}

const events = (ctx: Ctx, runId: string, stepId?: string): StepEventOut[] =>
  collect(ctx).flatMap((m) => (m.stepEvent && m.stepEvent.runId === runId && (!stepId || m.stepEvent.stepId === stepId) ? [m.stepEvent] : []));

const phases = (evs: StepEventOut[]) => evs.map((e) => `${e.phase.replace('STEP_PHASE_', '')}#${e.attempt}`).join(' ');

function step(id: string, over: Partial<PlanStep> = {}): PlanStep {
  return { id, needs: [], run: 'true', env: {}, timeoutMs: 0, kind: 'run', ...over };
}

async function welcomed(ctx: Ctx, index: number): Promise<AgentStream> {
  const s = await waitFor<AgentStream | 'exited'>(() => ctx.server.streams[index] ?? (ctx.agent.exitCode !== null && 'exited'), `link #${index + 1}`);
  if (s === 'exited') throw new CheckFailed(`the agent exited (code ${ctx.agent.exitCode}) before it linked:\n${ctx.output().slice(-2000)}`);
  const hello = await waitFor(() => s.received[0], 'Hello');
  expect(hello.body === 'hello', `the first message is ${hello.body}, not Hello`);
  return s;
}

function assign(s: AgentStream, runId: string, steps: PlanStep[]) {
  s.send({ assign: { runId, workflow: 'drover-conformance', steps, params: {}, paramsJson: '{}', runStartedMs: Date.now(), released: [], secrets: [] } });
}

interface Check {
  rule: string;
  check: string;
  run(ctx: Ctx): Promise<void>;
}

const RUN1 = 'r-conformance-1';
const RUN2 = 'r-conformance-2';
const UNSIGNED = 'r-conformance-unsigned';

/** Run last, on the newest link, when the scripted control plane signs. */
const SIGNED_CHECK: Check = {
  rule: 'control-signed',
  check: 'an unsigned Assign is refused: nothing of it runs, and Heartbeat.rejected_control_messages counts it',
  async run(ctx) {
    const s = ctx.server.current!;
    const before = Math.max(0, ...s.received.map((m) => m.heartbeat?.rejectedControlMessages ?? 0));
    s.sendRaw({ assign: { runId: UNSIGNED, workflow: 'drover-conformance', steps: [step('x')], params: {}, paramsJson: '{}', runStartedMs: Date.now(), released: [], secrets: [] } });
    await waitFor(() => s.received.some((m) => (m.heartbeat?.rejectedControlMessages ?? 0) > before), 'a Heartbeat counting the refusal', 6 * HEARTBEAT_MS + 2000);
    expect(events(ctx, UNSIGNED).length === 0, `the unsigned Assign ran: ${phases(events(ctx, UNSIGNED))}`);
  },
};

const CHECKS: Check[] = [
  {
    rule: 'hello-first',
    check: 'the first message is a Hello (seq 0) with a name, a boot id and an instance id',
    async run(ctx) {
      const s = await welcomed(ctx, 0);
      const h = s.received[0];
      expect(h.seq === 0, `Hello carries seq ${h.seq}`);
      expect(h.hello!.bootId && h.hello!.instanceId, `Hello lacks ${h.hello!.bootId ? 'instance_id' : 'boot_id'}`);
      ctx.name = h.hello!.name;
      s.send({ welcome: { agentId: ctx.name, appliedSeq: 0, heartbeatIntervalMs: HEARTBEAT_MS } });
    },
  },
  {
    rule: 'heartbeat',
    check: `after Welcome, Heartbeats (seq 0) every heartbeat_interval_ms (${HEARTBEAT_MS} ms)`,
    async run(ctx) {
      const s = ctx.server.streams[0];
      const since = Date.now();
      await waitFor(() => s.received.filter((m) => m.heartbeat).length >= 3, 'three Heartbeats', 6 * HEARTBEAT_MS + 2000);
      expect(s.received.filter((m) => m.heartbeat).every((m) => m.seq === 0), 'a Heartbeat carries a seq');
      expect(Date.now() - since < 6 * HEARTBEAT_MS + 2000, 'heartbeats are late');
    },
  },
  {
    rule: 'attempt-id',
    check: 'an Assigned step runs as attempt 1, run/step/1/<name>, with DROVER_ATTEMPT_ID, its log and outputs',
    async run(ctx) {
      assign(ctx.server.streams[0], RUN1, [
        step('a', { run: 'echo "$DROVER_ATTEMPT_ID"; echo "k=v" >> "$DROVER_OUTPUT"' }),
        step('b', { run: 'exit 3', retry: { attempts: 2, backoff: 'BACKOFF_FIXED', initialMs: 10, maxMs: 0, jitter: 0, retryOn: [] } }),
        step('c', { run: 'sleep 30', timeoutMs: 300 }),
        step('d', { needs: ['b'] }),
      ]);
      const id = `${RUN1}/a/1/${ctx.name}`;
      const evs = await waitFor(() => {
        const e = events(ctx, RUN1, 'a');
        return e.some((x) => x.phase === 'STEP_PHASE_SUCCEEDED' || x.phase === 'STEP_PHASE_FAILED') ? e : undefined;
      }, 'the end of step a');
      expect(phases(evs) === 'STARTED#1 SUCCEEDED#1', `step a reported ${phases(evs)}`);
      expect(evs.every((e) => e.attemptId === id), `step a's attempt ids are ${evs.map((e) => e.attemptId).join(', ')}, not ${id}`);
      expect(evs[1].outputs.k === 'v', `step a's outputs are ${JSON.stringify(evs[1].outputs)}`);
      const logs = collect(ctx).flatMap((m) => (m.log?.runId === RUN1 && m.log.stepId === 'a' ? [m.log] : []));
      expect(logs.every((l) => l.attemptId === id), 'a LogChunk names another attempt');
      expect(Buffer.concat(logs.map((l) => Buffer.from(l.data))).toString() === `${id}\n`, `step a's output is ${JSON.stringify(Buffer.concat(logs.map((l) => Buffer.from(l.data))).toString())}`);
    },
  },
  {
    rule: 'seq-next',
    check: 'StepEvents and LogChunks are numbered 1, 2, 3, ... with no gap',
    async run(ctx) {
      const seqs = collect(ctx).map((m) => m.seq);
      expect(seqs.length > 0 && seqs.every((s, i) => s === i + 1), `seqs ${seqs.join(', ')}`);
    },
  },
  {
    rule: 'eval-retry',
    check: 'exit 3 with retry{attempts: 2}: STARTED#1 RETRYING#1 STARTED#2 FAILED#2',
    async run(ctx) {
      const evs = await waitFor(() => {
        const e = events(ctx, RUN1, 'b');
        return e.some((x) => x.phase === 'STEP_PHASE_FAILED') ? e : undefined;
      }, 'the end of step b');
      expect(phases(evs) === 'STARTED#1 RETRYING#1 STARTED#2 FAILED#2', `step b reported ${phases(evs)}`);
      expect(evs.at(-1)!.exitCode === 3, `exit code ${evs.at(-1)!.exitCode}`);
    },
  },
  {
    rule: 'attempt-zero',
    check: 'a step whose need failed is SKIPPED with attempt 0 and no attempt id',
    async run(ctx) {
      const evs = await waitFor(() => (events(ctx, RUN1, 'd').length ? events(ctx, RUN1, 'd') : undefined), 'an event of step d');
      expect(phases(evs) === 'SKIPPED#0' && evs[0].attemptId === '', `step d reported ${phases(evs)} (${evs[0].attemptId || 'no id'})`);
    },
  },
  {
    rule: 'eval-timeout',
    check: 'a step past its timeout_ms is killed and FAILED',
    async run(ctx) {
      const evs = await waitFor(() => {
        const e = events(ctx, RUN1, 'c');
        return e.some((x) => x.phase !== 'STEP_PHASE_STARTED') ? e : undefined;
      }, 'the end of step c');
      expect(phases(evs) === 'STARTED#1 FAILED#1', `step c reported ${phases(evs)}`);
    },
  },
  {
    rule: 'welcome-resend',
    check: 'with nothing acknowledged, a dropped link is followed by a Hello and the resend of seq 1.. in order',
    async run(ctx) {
      const before = collect(ctx).length;
      ctx.server.streams[0].end();
      const s = await welcomed(ctx, 1);
      expect(s.received[0].hello!.lastAckedSeq === 0, `Hello.last_acked_seq is ${s.received[0].hello!.lastAckedSeq}`);
      s.send({ welcome: { agentId: ctx.name, appliedSeq: 0, heartbeatIntervalMs: HEARTBEAT_MS } });
      const resent = await waitFor(() => {
        const seq = s.received.filter((m) => m.seq > 0);
        return seq.length >= before ? seq : undefined;
      }, `the resend of ${before} messages`);
      expect(resent.slice(0, before).every((m, i) => m.seq === i + 1), `resent seqs ${resent.map((m) => m.seq).join(', ')}`);
      expect(resent.slice(0, before).every((m) => JSON.stringify(m) === JSON.stringify(ctx.bySeq.get(m.seq))), 'a resent message differs from the first copy');
    },
  },
  {
    rule: 'ack-durable',
    check: 'after Ack{n} and a reconnect, nothing up to n is sent again',
    async run(ctx) {
      const last = collect(ctx).at(-1)!.seq;
      ctx.server.streams[1].send({ ack: { seq: last } });
      await new Promise((r) => setTimeout(r, 300));
      ctx.server.streams[1].end();
      const s = await welcomed(ctx, 2);
      expect(s.received[0].hello!.lastAckedSeq === last, `Hello.last_acked_seq is ${s.received[0].hello!.lastAckedSeq}, not ${last}`);
      s.send({ welcome: { agentId: ctx.name, appliedSeq: last, heartbeatIntervalMs: HEARTBEAT_MS } });
      await new Promise((r) => setTimeout(r, 500));
      const again = s.received.filter((m) => m.seq > 0 && m.seq <= last);
      expect(again.length === 0, `seqs ${again.map((m) => m.seq).join(', ')} were sent again`);
    },
  },
  {
    rule: 'cancel-running',
    check: "Cancel of a running step kills its process group and reports CANCELLED with the reason",
    async run(ctx) {
      const s = ctx.server.streams[2];
      assign(s, RUN2, [step('long', { run: 'echo "$$"; sleep 300' })]);
      const pidChunk = await waitFor(() => collect(ctx).find((m) => m.log?.runId === RUN2)?.log ?? undefined, 'the step to print its pid');
      const pid = Number(Buffer.from(pidChunk.data).toString().trim());
      s.send({ cancel: { runId: RUN2, stepId: '', reason: 'conformance: cancel' } });
      const evs = await waitFor(() => {
        const e = events(ctx, RUN2);
        return e.some((x) => x.phase !== 'STEP_PHASE_STARTED') ? e : undefined;
      }, 'the end of the cancelled step');
      expect(phases(evs) === 'STARTED#1 CANCELLED#1', `the cancelled step reported ${phases(evs)}`);
      expect(evs.at(-1)!.message.includes('conformance: cancel'), `its message is "${evs.at(-1)!.message}"`);
      await waitFor(() => !alive(pid), `the step's process ${pid} to be gone`);
    },
  },
  {
    rule: 'runfinished',
    check: "after RunFinished, the next Hello's finished_attempts no longer names that run",
    async run(ctx) {
      const s = ctx.server.streams[2];
      s.send({ ack: { seq: collect(ctx).at(-1)!.seq } });
      s.send({ runFinished: { runId: RUN1 } });
      await new Promise((r) => setTimeout(r, 300));
      s.end();
      const next = await welcomed(ctx, 3);
      const finished = next.received[0].hello!.finishedAttempts;
      expect(!finished.some((id) => id.startsWith(`${RUN1}/`)), `finished_attempts still names ${RUN1}: ${finished.join(', ')}`);
      next.send({ welcome: { agentId: ctx.name, appliedSeq: collect(ctx).at(-1)!.seq, heartbeatIntervalMs: HEARTBEAT_MS } });
    },
  },
];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts `command` against a scripted control plane and runs every check; `{addr}`, `{dir}` and (signed) `{token}` in its arguments are filled in. */
export async function checkAgent(command: string[], opts: { signed?: boolean } = {}): Promise<AgentCheckResult[]> {
  if (!command.length) throw new Error('drover conformance agent needs the agent command after --, e.g. -- drover agent --insecure --server {addr} --name kit --state-dir {dir}');
  const pki = opts.signed ? await ScriptedPki.create() : undefined;
  const server = await ScriptedServer.start(pki);
  const work = mkdtempSync(join(tmpdir(), 'drover-conformance-'));
  const token = pki?.enrollToken() ?? '';
  const args = command.map((a) => a.replaceAll('{addr}', server.address).replaceAll('{dir}', join(work, 'state')).replaceAll('{token}', token));
  let out = '';
  const agent = spawn(args[0], args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DROVER_CONFORMANCE_ADDR: server.address } });
  agent.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  agent.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const ctx: Ctx = { server, agent, output: () => out, name: '', bySeq: new Map(), work };
  const results: AgentCheckResult[] = [];
  try {
    for (const c of pki ? [...CHECKS, SIGNED_CHECK] : CHECKS) {
      try {
        expect(agent.exitCode === null, `the agent exited (code ${agent.exitCode}):\n${out.slice(-2000)}`);
        await c.run(ctx);
        results.push({ rule: c.rule, check: c.check, ok: true, detail: '' });
      } catch (err) {
        results.push({ rule: c.rule, check: c.check, ok: false, detail: (err as Error).message });
      }
    }
    if (!pki) results.push({ rule: 'control-signed', check: 'unsigned control messages are refused', ok: true, skipped: true, detail: 'not checked without --signed: the agent links in plaintext, where nothing is signed' });
  } finally {
    agent.kill('SIGTERM');
    await new Promise((r) => (agent.exitCode !== null ? r(null) : agent.once('exit', r)));
    server.stop();
    rmSync(work, { recursive: true, force: true });
  }
  return results;
}
