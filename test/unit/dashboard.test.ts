import { describe, expect, it } from 'vitest';
import { buildDag } from '../../control-plane/dashboard/dag.js';
import { ago, duration } from '../../control-plane/dashboard/format.js';
import { parseLabelFilter } from '../../control-plane/dashboard/labels.js';
import type { RunInfo, StepInfo } from '../../control-plane/dashboard/messages.js';
import { apply, initialState, MAX_LOG_LINES, SPARK_POINTS } from '../../control-plane/dashboard/store.js';

const step = (id: string, status: string, extra: Partial<StepInfo> = {}): StepInfo => ({
  id,
  agent: 'a-1',
  status: `STEP_STATUS_${status}` as StepInfo['status'],
  attempt: 1,
  exitCode: 0,
  startedMs: 0,
  endedMs: 0,
  cpuSeconds: 0,
  peakRssBytes: 0,
  outputs: {},
  message: '',
  needs: [],
  isFinally: false,
  parent: '',
  kind: 'script',
  attempts: [],
  waiting: '',
  blocked: false,
  approval: null,
  reusedFrom: '',
  ...extra,
});

const run = (id: string, status = 'RUNNING', steps: StepInfo[] = []): RunInfo => ({
  id,
  workflow: 'wf',
  status: `RUN_STATUS_${status}` as RunInfo['status'],
  createdMs: 1,
  startedMs: 1,
  endedMs: 0,
  params: {},
  steps,
  planHash: '',
  message: '',
  workflowVersion: 1,
  stepCounts: null,
  idempotencyKey: '',
  trigger: 'api',
  deduplicated: false,
  rerunOf: '',
});

describe('dashboard', () => {
  it('dashboard - the DAG folds fan-out instances into their group node with a count and a state summary, edges from needs', () => {
    const dag = buildDag([
      step('a', 'SUCCEEDED'),
      step('fan', 'RUNNING', { kind: 'group', needs: ['a'] }),
      step('fan[x]', 'SUCCEEDED', { parent: 'fan', needs: ['a'] }),
      step('fan[y]', 'RUNNING', { parent: 'fan', needs: ['a'] }),
      step('fan[z]', 'PENDING', { parent: 'fan', needs: ['a'], waiting: 'waiting for agent z, disconnected 40 s ago; lost after 60 s', blocked: true }),
      step('b', 'PENDING', { needs: ['fan[x]', 'fan'] }),
      step('tidy', 'PENDING', { isFinally: true }),
    ]);
    expect(dag.nodes.map((n) => [n.id, n.tone, n.instances.length])).toEqual([
      ['a', 'succeeded', 0],
      ['fan', 'waiting', 3],
      ['b', 'pending', 0],
      ['tidy', 'pending', 0],
    ]);
    expect(dag.nodes[1].summary).toEqual({ succeeded: 1, running: 1, waiting: 1 });
    expect(dag.edges.map((e) => `${e.from}>${e.to}${e.implied ? ' (finally)' : ''}`)).toEqual(['a>fan', 'fan>b', 'b>tidy (finally)']);
    const [a, fan] = dag.nodes;
    expect(fan.x).toBeGreaterThan(a.x);
    expect(dag.width).toBeGreaterThan(0);
  });

  it('dashboard - a group whose instances all succeeded is green; one failed instance makes it red', () => {
    const ok = buildDag([step('g', 'RUNNING', { kind: 'group' }), step('g[0]', 'SUCCEEDED', { parent: 'g' }), step('g[1]', 'SUCCEEDED', { parent: 'g' })]);
    expect(ok.nodes[0].tone).toBe('succeeded');
    const bad = buildDag([step('g', 'RUNNING', { kind: 'group' }), step('g[0]', 'FAILED', { parent: 'g' }), step('g[1]', 'RUNNING', { parent: 'g' })]);
    expect(bad.nodes[0].tone).toBe('failed');
  });

  it('dashboard - store: runs are upserted newest first, a run detail keeps its steps across summaries, step changes land in the detail', () => {
    let s = apply(initialState(), { type: 'runs', runs: [run('r1')] });
    s = apply(s, { type: 'runSummary', run: run('r2') });
    expect(s.runs.map((r) => r.id)).toEqual(['r2', 'r1']);
    s = apply(s, { type: 'runDetail', run: run('r1', 'RUNNING', [step('a', 'RUNNING')]) });
    s = apply(s, { type: 'runSummary', run: run('r1', 'SUCCEEDED') });
    expect(s.detail?.run.status).toBe('RUN_STATUS_SUCCEEDED');
    expect([...s.detail!.steps.keys()]).toEqual(['a']);
    s = apply(s, { type: 'step', runId: 'r1', step: step('a', 'SUCCEEDED') });
    s = apply(s, { type: 'step', runId: 'other', step: step('zz', 'SUCCEEDED') });
    expect([...s.detail!.steps.values()].map((x) => x.status)).toEqual(['STEP_STATUS_SUCCEEDED']);
  });

  it('dashboard - store: sparkline history keeps the last samples, logs append for the same step and restart for another', () => {
    let s = apply(initialState(), { type: 'fleet', agents: [], devices: [], history: { a: Array.from({ length: 70 }, (_, i) => ({ t: i, cpu: i, mem: 1 })) } });
    expect(s.history.get('a')).toHaveLength(SPARK_POINTS);
    s = apply(s, { type: 'agent', agent: { name: 'a' } as never, sample: { t: 99, cpu: 5, mem: 6 } });
    expect(s.history.get('a')!.at(-1)).toEqual({ t: 99, cpu: 5, mem: 6 });
    expect(s.history.get('a')).toHaveLength(SPARK_POINTS);
    const line = (text: string) => ({ runId: 'r', stepId: 'x', attemptId: '', stream: 'LOG_STREAM_STDOUT' as const, text, atMs: 0, agent: '', attempt: 1 });
    s = apply(s, { type: 'logs', run: 'r', step: 'x', lines: [line('1')] });
    s = apply(s, { type: 'logs', run: 'r', step: 'x', lines: [line('2')] });
    expect(s.logs!.lines.map((l) => l.text)).toEqual(['1', '2']);
    s = apply(s, { type: 'logs', run: 'r', step: 'y', lines: Array.from({ length: MAX_LOG_LINES + 5 }, (_, i) => line(String(i))) });
    expect(s.logs!.lines).toHaveLength(MAX_LOG_LINES);
    expect(s.logs!.lines[0].text).toBe('5');
  });

  it('dashboard - the label filter takes key=value, key, !key and key!=value terms, all of which must hold', () => {
    const f = parseLabelFilter('role=assets, site !gpu env!=prod');
    expect(f({ role: 'assets', site: 'lyon', env: 'dev' })).toBe(true);
    expect(f({ role: 'assets', site: 'lyon', env: 'prod' })).toBe(false);
    expect(f({ role: 'assets', site: 'lyon', gpu: '1' })).toBe(false);
    expect(f({ role: 'web', site: 'lyon' })).toBe(false);
    expect(parseLabelFilter('')({})).toBe(true);
  });

  it('dashboard - durations and ages read short', () => {
    expect([duration(850), duration(4200), duration(200_000), duration(7_500_000)]).toEqual(['850 ms', '4.2 s', '3 m 20 s', '2 h 5 m']);
    expect([ago(1000, 1500), ago(1000, 13_000), ago(1000, 181_000), ago(0, 5)]).toEqual(['just now', '12 s ago', '3 m ago', 'never']);
  });
});
