/**
 * GetLogs and WatchRun (control-plane/api/run-api.ts) over a long stored log:
 * past lines go out a page at a time as the client takes them, lines stored
 * meanwhile follow, then live ones, each exactly once and in order.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runService } from '../../control-plane/api/run-api.js';
import { RunTopics } from '../../control-plane/events.js';
import type { Runs } from '../../control-plane/runs.js';
import { LowdbStore } from '../../control-plane/store/lowdb-store.js';
import { LOG_PAGE_RECORDS, type LogRecord, type RunRecord, type StepRecord } from '../../control-plane/store/store.js';
import type { LogLine, RunEvent } from '../../proto/index.js';

const step = (id: string, attempts: [number, string][] = []): StepRecord => ({
  id, parent: '', kind: 'run', held: false, agent: 'a', previousAgents: [], status: 'running', attempt: 1, exitCode: 0, startedMs: 1, endedMs: 0,
  cpuSeconds: 0, peakRssBytes: 0, outputs: {}, message: '',
  attempts: attempts.map(([n, id]) => ({ n, id, agent: 'a', attempt: n, status: 'running', exitCode: 0, startedMs: 1, endedMs: 0, message: '', superseded: '', note: '' })),
});

const run = (steps: StepRecord[]): RunRecord => ({
  id: 'r', workflow: 'w', status: 'running', createdMs: 1, startedMs: 1, endedMs: 0, params: {}, message: '', cancelRequested: false, deadlineExceeded: false, workflowVersion: 0,
  plan: { workflow: 'w', hash: 'h', params: {}, paramsJson: '{}', deadlineMs: 0, concurrency: 'allow', onAgentLost: 'fail', steps: [], groups: [] },
  steps: Object.fromEntries(steps.map((s) => [s.id, s])),
});

/** A server stream whose client takes one message per turn of the event loop, and says when it took the n-th. */
class SlowClient<T> extends Writable {
  readonly got: T[] = [];
  ended = new Promise<void>((resolve) => this.once('finish', resolve));
  constructor(
    readonly request: unknown,
    private readonly onTake: (n: number) => void = () => undefined,
  ) {
    super({ objectMode: true, highWaterMark: 16 });
  }
  override _write(msg: T, _enc: BufferEncoding, done: () => void) {
    this.got.push(msg);
    this.onTake(this.got.length);
    setImmediate(done);
  }
}

async function setup(steps: StepRecord[]) {
  const store = new LowdbStore({ dataDir: mkdtempSync(join(tmpdir(), 'drover-follow-')) });
  await store.open();
  const r = run(steps);
  store.putRun(r);
  const topics = new RunTopics();
  const waitingView = () => ({ now: Date.now(), lostAfterMs: 60_000, agent: () => undefined, blockerOf: () => undefined });
  const runs = { get: () => r, topics, waitingView, onAgentChange: () => () => undefined } as unknown as Runs;
  /** What Runs.applyLog does with a chunk: store its lines, then publish each. */
  const applyLog = (...logs: LogRecord[]) => {
    store.appendLog(r.id, ...logs);
    for (const log of logs) topics.publish({ type: 'log', run: r, log });
  };
  const end = () => {
    r.status = 'succeeded';
    topics.publish({ type: 'run', run: r });
  };
  return { store, run: r, topics, service: runService(runs, store), applyLog, end };
}

const line = (text: string, over: Partial<LogRecord> = {}): LogRecord => ({ t: 1, step: 's', attempt: 'r/s/1/a', agent: 'a', stream: 'stdout', text, ...over });

describe('run api - logs from a long stored log', () => {
  it('run api - a follow sends past lines page by page, then lines stored meanwhile, then live ones: each once, in order', async () => {
    const h = await setup([step('s')]);
    const past = LOG_PAGE_RECORDS * 5 + 500;
    for (let i = 0; i < past; i += 100) h.applyLog(...Array.from({ length: 100 }, (_, j) => line(`past ${i + j}`)));
    const expected = Array.from({ length: past }, (_, i) => `past ${i}`);
    let stored = 0;
    const client = new SlowClient<LogLine>({ runId: 'r', stepId: '', follow: true, attempt: 0 }, (n) => {
      // While past pages are sent, the agent keeps logging.
      if (n % 700 === 0 && n < past) {
        h.applyLog(line(`meanwhile ${stored}`), line(`meanwhile ${stored}b`));
        expected.push(`meanwhile ${stored}`, `meanwhile ${stored}b`);
        stored++;
      }
    });
    (h.service.GetLogs as (c: unknown) => void)(client);
    // Never more than a page and the stream's buffer ahead of the client.
    await new Promise((r) => setImmediate(r));
    expect(client.writableLength).toBeLessThanOrEqual(LOG_PAGE_RECORDS + 16);
    while (client.got.length < expected.length) await new Promise((r) => setTimeout(r, 5));
    for (let i = 0; i < 3; i++) {
      h.applyLog(line(`live ${i}`));
      expected.push(`live ${i}`);
    }
    h.end();
    await client.ended;
    expect(stored).toBeGreaterThan(5);
    expect(client.got.map((l) => l.text)).toEqual(expected);
    await h.store.close();
  });

  it('run api - a step change while past pages are sent comes after every line stored before it, once', async () => {
    const h = await setup([step('s')]);
    for (let i = 0; i < LOG_PAGE_RECORDS * 3; i++) h.applyLog(line(`${i}`));
    const client = new SlowClient<RunEvent>({ id: 'r', includeLogs: true }, (n) => {
      if (n === 10) h.topics.publish({ type: 'step', run: h.run, step: h.run.steps.s });
    });
    (h.service.WatchRun as (c: unknown) => void)(client);
    while (client.got.length < 1 + LOG_PAGE_RECORDS * 3 + 1) await new Promise((r) => setTimeout(r, 5));
    h.end();
    await client.ended;
    const kinds = client.got.map((e) => (e.run ? 'run' : e.step ? 'step' : 'log'));
    expect(kinds.filter((k) => k === 'step')).toHaveLength(1);
    expect(kinds.indexOf('step')).toBe(1 + LOG_PAGE_RECORDS * 3);
    expect(kinds[kinds.length - 1]).toBe('run');
    await h.store.close();
  });

  it('run api - logs without follow send the lines stored when asked, filtered by step and attempt number', async () => {
    const h = await setup([step('s', [[1, 'r/s/1/a'], [2, 'r/s/1/b']]), step('t', [[1, 'r/t/1/a']])]);
    for (let i = 0; i < 1500; i++) h.applyLog(line(`s ${i % 2 ? 2 : 1} ${i}`, { attempt: i % 2 ? 'r/s/1/b' : 'r/s/1/a' }), line(`t ${i}`, { step: 't', attempt: 'r/t/1/a' }));
    const client = new SlowClient<LogLine>({ runId: 'r', stepId: 's', follow: false, attempt: 2 });
    (h.service.GetLogs as (c: unknown) => void)(client);
    await client.ended;
    expect(client.got.map((l) => l.text)).toEqual(Array.from({ length: 750 }, (_, i) => `s 2 ${i * 2 + 1}`));
    expect(client.got.every((l) => l.attempt === 2 && l.stream === 'LOG_STREAM_STDOUT')).toBe(true);
    await h.store.close();
  });
});
