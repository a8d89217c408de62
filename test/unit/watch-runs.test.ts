/**
 * WatchRuns (control-plane/api/watch-runs.ts): the snapshot, then each
 * changed run once per batch in its latest state, filtered by workflow and
 * status, with a run that stops matching the status sent once more.
 */
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { watchRuns, WATCH_RUNS_BATCH_MS } from '../../control-plane/api/watch-runs.js';
import { RunTopics } from '../../control-plane/events.js';
import type { Runs } from '../../control-plane/runs.js';
import type { RunRecord, StepRecord } from '../../control-plane/store/store.js';
import type { RunInfo } from '../../proto/index.js';

const step = (id: string, status: StepRecord['status']): StepRecord => ({
  id, parent: '', kind: 'run', held: false, agent: 'a', previousAgents: [], status, attempt: 1, exitCode: 0, startedMs: 1, endedMs: 0,
  cpuSeconds: 0, peakRssBytes: 0, outputs: {}, message: '', attempts: [],
});
const run = (id: string, workflow: string, status: RunRecord['status'], steps: StepRecord[] = []): RunRecord => ({
  id, workflow, status, createdMs: 1, startedMs: 1, endedMs: 0, params: {}, message: '', cancelRequested: false, deadlineExceeded: false, workflowVersion: 0,
  plan: { workflow, hash: 'h', params: {}, paramsJson: '{}', deadlineMs: 0, concurrency: 'allow', onAgentLost: 'fail', steps: [], groups: [] },
  steps: Object.fromEntries(steps.map((s) => [s.id, s])),
});

function open(request: { workflow?: string; status?: string; limit?: number }, existing: RunRecord[]) {
  const topics = new RunTopics();
  const listed: unknown[] = [];
  const runs = {
    topics,
    list: (f: unknown) => (listed.push(f), existing),
  } as unknown as Runs;
  const call = Object.assign(new EventEmitter(), {
    request: { workflow: '', status: 'RUN_STATUS_UNSPECIFIED', limit: 0, ...request },
    got: [] as RunInfo[],
    write(m: RunInfo) {
      this.got.push(m);
      return true;
    },
  });
  (watchRuns(runs) as (c: unknown) => void)(call);
  return { call, topics, listed };
}

afterEach(() => void vi.useRealTimers());

describe('watch runs', () => {
  it('watch runs - a snapshot without steps, then a thousand changes of one run within a batch arrive once, in the latest state', () => {
    vi.useFakeTimers();
    const big = run('r-1', 'fan', 'running', Array.from({ length: 1000 }, (_, i) => step(`s${i}`, 'pending')));
    const { call, topics } = open({}, [big]);
    expect(call.got).toHaveLength(1);
    expect(call.got[0]).toMatchObject({ id: 'r-1', steps: [], stepCounts: { total: 1000, pending: 1000 } });
    for (const s of Object.values(big.steps)) {
      s.status = 'succeeded';
      topics.publish({ type: 'step', run: big, step: s });
    }
    expect(call.got).toHaveLength(1);
    vi.advanceTimersByTime(WATCH_RUNS_BATCH_MS);
    expect(call.got).toHaveLength(2);
    expect(call.got[1]).toMatchObject({ id: 'r-1', steps: [], stepCounts: { total: 1000, succeeded: 1000, pending: 0 } });
  });

  it('watch runs - the workflow and status filters apply; a run leaving the status is sent once more, then no longer', () => {
    vi.useFakeTimers();
    const a = run('r-a', 'deploy', 'running');
    const { call, topics, listed } = open({ workflow: 'deploy', status: 'RUN_STATUS_RUNNING', limit: 5 }, [a]);
    expect(listed).toEqual([{ limit: 5, workflow: 'deploy', status: 'running' }]);
    topics.publish({ type: 'run', run: run('r-other', 'backup', 'running') });
    vi.advanceTimersByTime(WATCH_RUNS_BATCH_MS);
    expect(call.got.map((r) => r.id)).toEqual(['r-a']);
    a.status = 'succeeded';
    topics.publish({ type: 'run', run: a });
    vi.advanceTimersByTime(WATCH_RUNS_BATCH_MS);
    expect(call.got.map((r) => [r.id, r.status])).toEqual([['r-a', 'RUN_STATUS_RUNNING'], ['r-a', 'RUN_STATUS_SUCCEEDED']]);
    topics.publish({ type: 'run', run: a });
    vi.advanceTimersByTime(WATCH_RUNS_BATCH_MS);
    expect(call.got).toHaveLength(2);
  });

  it('watch runs - a cancelled call stops listening', () => {
    vi.useFakeTimers();
    const { call, topics } = open({}, []);
    call.emit('cancelled');
    expect(topics.all.size).toBe(0);
  });
});
