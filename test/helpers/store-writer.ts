/**
 * Child process for the store durability test: puts runs forever, printing
 * "durable N" after each flush completes, until it is killed.
 */
import { LowdbStore } from '../../control-plane/store/lowdb-store.js';
import type { RunRecord } from '../../control-plane/store/store.js';

const store = new LowdbStore({ dataDir: process.argv[2], coalesceMs: 1 });
await store.open();
for (let i = 1; ; i++) {
  const run: RunRecord = {
    id: `run-${String(i).padStart(6, '0')}`,
    workflow: 'w',
    status: 'running',
    createdMs: i,
    startedMs: i,
    endedMs: 0,
    params: { i: String(i) },
    message: 'x'.repeat(200),
    cancelRequested: false,
    deadlineExceeded: false,
    workflowVersion: 0,
    plan: { workflow: 'w', hash: 'h', params: {}, paramsJson: '{}', deadlineMs: 0, concurrency: 'allow', onAgentLost: 'fail', steps: [], groups: [] },
    steps: {},
  };
  store.putRun(run);
  store.appendLog(run.id, { t: i, step: 's', attempt: 'a', agent: 'g', stream: 'stdout', text: `line ${i}\n` });
  await store.flush();
  process.stdout.write(`durable ${i}\n`);
}
