/**
 * Fault 1: SIGKILL an agent mid-step ten times across one run, restarting it
 * each time. Nothing lost, nothing twice: no attempt id starts twice, every
 * step ends with exactly one completed attempt, and every log line of a
 * completed attempt is stored exactly once.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DroverClient } from '../../sdk/index.js';
import { startAgent, startServer, tempDir, waitFor, type AgentProc } from '../helpers/cluster.js';
import { lines, storedLogs } from './fault-helpers.js';

const STEPS = 12;
const KILLS = 10;

describe('fault - agent killed mid-step', () => {
  it(`fault - ${KILLS} SIGKILLs of an agent across a run lose nothing and repeat no attempt`, async () => {
    const server = await startServer();
    const stateDir = tempDir('drover-victim-');
    let agent: AgentProc = startAgent(server, 'victim', { role: 'victim' }, stateDir);
    const client = new DroverClient(server.clientOptions);
    const dir = tempDir('drover-fault1-');
    const started = join(dir, 'started');
    const done = join(dir, 'done');
    const steps = Array.from({ length: STEPS }, (_, i) => ({
      id: `s${i}`,
      needs: i ? [`s${i - 1}`] : [],
      target: { agent: 'victim' },
      retry: { attempts: 30, backoff: 'fixed', initial: '100ms' },
      env: { STARTED: started, DONE: done },
      run: 'echo "$DROVER_ATTEMPT_ID" >> "$STARTED"; for i in 1 2 3 4 5; do echo "$DROVER_ATTEMPT_ID line $i"; sleep 0.06; done; echo "$DROVER_ATTEMPT_ID" >> "$DONE"',
    }));
    const file = join(dir, 'chain.json');
    writeFileSync(file, JSON.stringify({ name: 'kill-chain', steps }));
    await waitFor(async () => (await client.fleet.list()).some((a) => a.state === 'connected'), 20_000, () => 'victim to connect');
    const handle = await client.runs.launch(file);

    const t0 = Date.now();
    for (let k = 0; k < KILLS; k++) {
      const before = lines(started).length;
      // Kill while an attempt is running: after it started, before it is done.
      await waitFor(() => lines(started).length > before, 30_000, () => `attempt ${k + 1} to start`);
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 150));
      agent.child.kill('SIGKILL');
      await new Promise((r) => agent.child.once('exit', r));
      agent = startAgent(server, 'victim', { role: 'victim' }, stateDir);
    }
    const run = await handle.wait();
    const attempts = lines(started);
    const completed = lines(done);
    const logs = await storedLogs(server.dataDir, run.id);
    const logKeys = logs.map((l) => l.text.trim());
    console.log(
      `fault 1: ${KILLS} kills; ${attempts.length} attempts started for ${STEPS} steps; ${completed.length} completed; ` +
        `${logs.length} log lines stored; run ${run.status} in ${Date.now() - t0} ms`,
    );

    expect(run.status).toBe('succeeded');
    expect(new Set(attempts).size).toBe(attempts.length);
    expect(new Set(completed).size).toBe(completed.length);
    for (const s of steps) expect(run.steps.find((x) => x.id === s.id)?.status).toBe('succeeded');
    expect(new Set(logKeys).size).toBe(logKeys.length);
    // The attempt each step succeeded with has all five lines, once and in order.
    for (const step of run.steps) {
      const attemptId = `${run.id}/${step.id}/${step.attempt}/victim`;
      expect(logs.filter((l) => l.attempt === attemptId).map((l) => l.text)).toEqual([1, 2, 3, 4, 5].map((i) => `${attemptId} line ${i}\n`));
    }
    expect(attempts.length).toBeGreaterThan(STEPS);
    expect(readFileSync(done, 'utf8')).not.toBe('');
    client.close();
  });
});
