import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { toLogLine, toRunInfo } from '../../control-plane/api/convert.js';
import { MAX_ATTEMPTS } from '../../control-plane/scheduler/attempts.js';
import { Fleet } from '../../control-plane/fleet.js';
import { LogIntake } from '../../control-plane/log-intake.js';
import { Runs } from '../../control-plane/runs.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import type { RunRecord } from '../../control-plane/store/store.js';
import type { AgentConnection } from '../../control-plane/transport/agent-link.js';
import { Workflows } from '../../control-plane/workflows.js';
import type { HelloOut, LogChunkOut, ServerMessage, StepEventOut } from '../../proto/index.js';

/** A control plane's run machine with a memory store and agents edge-a and edge-b (and stranger, which never gets the step). */
function harness(onAgentLost: 'retry' | 'fail' | 'wait', retry = 0) {
  let now = 1_000_000;
  const store = new MemoryStore();
  const fleet = new Fleet(store, () => now);
  const sent = new Map<string, ServerMessage[]>();
  for (const name of ['edge-a', 'edge-b', 'stranger']) {
    const conn: AgentConnection = { transport: 'grpc', peer: name, send: (m) => void sent.get(name)!.push(m), close: () => undefined };
    sent.set(name, []);
    fleet.connect(conn, { name, labels: { pool: name === 'stranger' ? 'other' : 'edge' }, instanceId: name, bootId: name } as unknown as HelloOut);
  }
  const runs = new Runs(store, fleet, new Workflows(store, () => now), pino({ level: 'silent' }), () => now, 2_000);
  const intake = new LogIntake(store, (id) => runs.isActive(id));
  runs.ended.subscribe((r) => intake.forget(r.id));
  const seqs = new Map<string, number>();
  const nextSeq = (agent: string) => {
    seqs.set(agent, (seqs.get(agent) ?? 0) + 1);
    return seqs.get(agent)!;
  };
  let run!: RunRecord;
  const h = {
    store,
    runs,
    sent,
    get run() {
      return run;
    },
    get step() {
      return run.steps.work;
    },
    async submit() {
      const retryPolicy = retry ? `\n    retry: { attempts: ${retry}, initial: 1s }` : '';
      const source = `name: partitioned\nonAgentLost: ${onAgentLost}\nsteps:\n  - id: work\n    target: { labels: { pool: edge } }\n    run: ./work${retryPolicy}\n`;
      run = await runs.submit({ source, filename: 'wf.yaml', params: {} });
      return run.steps.work.agent;
    },
    tick(ms: number) {
      now += ms;
    },
    event(agent: string, phase: StepEventOut['phase'], attempt = 1, extra: Partial<StepEventOut> = {}) {
      const ev = { runId: run.id, stepId: 'work', attemptId: `${run.id}/work/${attempt}/${agent}`, attempt, phase, exitCode: 0, signal: '', startedAtMs: 0, endedAtMs: 0, cpuSeconds: 0, peakRssBytes: 0, outputs: {}, message: '', ...extra };
      if (phase === 'STEP_PHASE_STARTED') ev.startedAtMs = now;
      else ev.endedAtMs = now;
      runs.applyStepEvent(agent, ev);
    },
    log(agent: string, text: string, attempt = 1, seq = nextSeq(agent), attemptId = `${run.id}/work/${attempt}/${agent}`) {
      const chunk: LogChunkOut = { runId: run.id, stepId: 'work', attemptId, stream: 'LOG_STREAM_STDOUT', data: Buffer.from(text), atMs: now, offset: 0 };
      // As agent-sessions.ts does: a chunk stored before is dropped at the session layer.
      if (!intake.duplicate(agent, chunk, seq)) runs.applyLog(agent, intake.lines(chunk, seq));
      return seq;
    },
    async lines() {
      return (await store.readLogs(run.id)).map((l) => `${l.attempt.split('/').slice(2).join('/')}: ${l.text.trim()}`);
    },
  };
  return h;
}

const other = (agent: string) => (agent === 'edge-a' ? 'edge-b' : 'edge-a');

describe('attempts - every attempt of a step is kept', () => {
  it('attempts - retry: a superseded attempt that completes later is kept under its attempt; the step keeps the new agent\'s result', async () => {
    const h = harness('retry');
    const a = await h.submit();
    const b = other(a);
    h.event(a, 'STEP_PHASE_STARTED');
    h.log(a, 'a-1\n');
    h.tick(3_000);
    h.runs.agentLost(a);
    expect(h.step.agent).toBe(b);
    expect(h.step.attempts).toMatchObject([{ n: 1, agent: a, status: 'lost', superseded: 'the agent was declared lost', note: `the agent was declared lost; the step moved to ${b}` }]);

    h.event(b, 'STEP_PHASE_STARTED');
    h.log(b, 'b-1\n');
    h.tick(1_000);
    h.event(b, 'STEP_PHASE_SUCCEEDED', 1, { outputs: { from: 'b' } });
    expect(h.run.status).toBe('succeeded');

    // The cut-off agent comes back with what it did meanwhile.
    const lateSeq = h.log(a, 'a-2\n');
    h.tick(500);
    h.event(a, 'STEP_PHASE_FAILED', 1, { exitCode: 3, message: 'exited with code 3' });
    h.log(a, 'a-2 again\n', 1, lateSeq);

    expect(h.run.status).toBe('succeeded');
    expect(h.step).toMatchObject({ agent: b, status: 'succeeded', outputs: { from: 'b' } });
    expect(h.step.attempts).toMatchObject([
      { n: 1, id: `${h.run.id}/work/1/${a}`, agent: a, attempt: 1, status: 'failed', exitCode: 3, endedMs: 1_004_500, superseded: 'the agent was declared lost', note: `failed on ${a} after the agent was declared lost` },
      { n: 2, id: `${h.run.id}/work/1/${b}`, agent: b, attempt: 1, status: 'succeeded', superseded: '', note: '' },
    ]);
    expect(await h.lines()).toEqual([`1/${a}: a-1`, `1/${b}: b-1`, `1/${a}: a-2`]);

    const info = toRunInfo(h.run).steps![0];
    expect(info.attempts?.map((x) => [x.number, x.agent, x.status, x.superseded])).toEqual([
      [1, a, 'ATTEMPT_STATUS_FAILED', true],
      [2, b, 'ATTEMPT_STATUS_SUCCEEDED', false],
    ]);
    const logs = await h.store.readLogs(h.run.id);
    expect(logs.map((l) => toLogLine(h.run.id, l, h.step).attempt)).toEqual([1, 2, 1]);
  });

  it('attempts - fail: the step stays failed, and the late completion and its lines are in the history', async () => {
    const h = harness('fail');
    const a = await h.submit();
    h.event(a, 'STEP_PHASE_STARTED');
    h.log(a, 'a-1\n');
    h.runs.agentLost(a, 'no contact for 2s');
    expect(h.run.status).toBe('failed');
    expect(h.step.message).toBe(`agent ${a} was lost (no contact for 2s)`);

    h.log(a, 'a-2\n');
    h.event(a, 'STEP_PHASE_SUCCEEDED', 1, { outputs: { late: 'yes' } });
    expect(h.step).toMatchObject({ status: 'failed', outputs: {}, message: `agent ${a} was lost (no contact for 2s)` });
    expect(h.step.attempts).toMatchObject([{ n: 1, status: 'succeeded', superseded: 'the agent was declared lost', note: `completed on ${a} after the agent was declared lost` }]);
    expect(await h.lines()).toEqual([`1/${a}: a-1`, `1/${a}: a-2`]);
  });

  it('attempts - fail: an attempt the control plane first hears of after the agent was lost is superseded too', async () => {
    const h = harness('fail');
    const a = await h.submit();
    h.runs.agentLost(a);
    h.event(a, 'STEP_PHASE_STARTED');
    h.log(a, 'late start\n');
    h.event(a, 'STEP_PHASE_SUCCEEDED');
    expect(h.step.status).toBe('failed');
    expect(h.step.attempts).toMatchObject([{ n: 1, status: 'succeeded', superseded: 'the agent was declared lost', note: `completed on ${a} after the agent was declared lost` }]);
    expect(await h.lines()).toEqual([`1/${a}: late start`]);
  });

  it('attempts - wait: the same agent carries on and its attempt decides the step', async () => {
    const h = harness('wait');
    const a = await h.submit();
    h.event(a, 'STEP_PHASE_STARTED');
    h.runs.agentLost(a);
    h.event(a, 'STEP_PHASE_SUCCEEDED');
    expect(h.step).toMatchObject({ agent: a, status: 'succeeded' });
    expect(h.step.attempts).toMatchObject([{ n: 1, status: 'succeeded', superseded: '', note: '' }]);
  });

  it('attempts - a step that retries keeps every attempt, the last MAX_ATTEMPTS of them, numbered for good', async () => {
    const h = harness('fail', 30);
    const a = await h.submit();
    for (let i = 1; i <= 25; i++) {
      h.event(a, 'STEP_PHASE_STARTED', i);
      h.log(a, `try ${i}\n`, i);
      h.event(a, i < 25 ? 'STEP_PHASE_RETRYING' : 'STEP_PHASE_SUCCEEDED', i, i < 25 ? { exitCode: 1, message: `attempt ${i} of 30 exited with code 1; retrying in 1.0s` } : {});
    }
    expect(h.step).toMatchObject({ status: 'succeeded', attempt: 25 });
    const history = h.step.attempts!;
    expect(history).toHaveLength(MAX_ATTEMPTS);
    expect(history[0]).toMatchObject({ n: 6, attempt: 6, status: 'failed', exitCode: 1, message: 'attempt 6 of 30 exited with code 1; retrying in 1.0s' });
    expect(history.at(-1)).toMatchObject({ n: 25, attempt: 25, status: 'succeeded' });
    // Lines of dropped attempts stay in the log; they just no longer carry a number.
    const logs = await h.store.readLogs(h.run.id);
    expect(logs).toHaveLength(25);
    expect([toLogLine(h.run.id, logs[0], h.step).attempt, toLogLine(h.run.id, logs[24], h.step).attempt]).toEqual([0, 25]);
  });

  it('attempts - events and lines from an agent that never had the step, or naming another agent\'s attempt, change nothing', async () => {
    const h = harness('retry');
    const a = await h.submit();
    const b = other(a);
    h.event(a, 'STEP_PHASE_STARTED');
    h.event('stranger', 'STEP_PHASE_SUCCEEDED');
    h.log('stranger', 'not mine\n');
    // The step's own agent may not write lines into another agent's attempt either.
    h.log(a, 'forged\n', 1, undefined, `${h.run.id}/work/1/${b}`);
    expect(h.step.status).toBe('running');
    expect(h.step.attempts).toHaveLength(1);
    expect(await h.lines()).toEqual([]);
  });

  it('attempts - a step stored before attempts were kept converts with no history, and starts one on its next event', async () => {
    const h = harness('wait');
    const a = await h.submit();
    delete h.step.attempts;
    expect(toRunInfo(h.run).steps![0].attempts).toEqual([]);
    expect(toLogLine(h.run.id, { t: 1, step: 'work', attempt: `${h.run.id}/work/1/${a}`, agent: a, stream: 'stdout', text: 'x\n' }, h.step).attempt).toBe(0);
    h.event(a, 'STEP_PHASE_SUCCEEDED');
    expect(h.step.attempts).toMatchObject([{ n: 1, agent: a, status: 'succeeded' }]);
  });
});
