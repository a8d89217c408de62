/**
 * Fault 2: SIGKILL the control plane with 60 runs in flight on three agents,
 * restart it on the same address and data dir. Every run reaches a terminal
 * state, no step runs twice, and every log line is stored once.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DroverClient, isTerminal } from '../../sdk/index.js';
import { startAgent, startServer, tempDir, waitFor } from '../helpers/cluster.js';
import { lines, storedLogs } from './fault-helpers.js';

const RUNS = 60;

describe('fault - control plane killed with runs in flight', () => {
  it(`fault - ${RUNS} runs survive a SIGKILL of the control plane`, async () => {
    const first = await startServer();
    for (const n of ['a1', 'a2', 'a3']) startAgent(first, n, { pool: 'p' });
    let client = new DroverClient(first.clientOptions);
    await waitFor(async () => (await client.fleet.list()).filter((a) => a.state === 'connected').length === 3, 20_000, () => 'agents');

    const dir = tempDir('drover-fault2-');
    const effects = join(dir, 'effects');
    const file = join(dir, 'wf.json');
    const step = (id: string, needs: string[]) => ({
      id,
      needs,
      target: { labels: { pool: 'p' } },
      env: { EFFECTS: effects },
      run: 'echo "$DROVER_RUN_ID $DROVER_STEP_ID" >> "$EFFECTS"; for i in 1 2 3; do echo "$DROVER_STEP_ID line $i"; sleep 0.4; done',
    });
    writeFileSync(file, JSON.stringify({ name: 'in-flight', steps: [step('a', []), step('b', ['a']), step('c', ['b'])] }));
    const ids: string[] = [];
    for (let i = 0; i < RUNS; i++) ids.push((await client.runs.launch(file)).id);
    await waitFor(() => lines(effects).length >= RUNS / 3, 30_000, () => 'runs to be under way');

    const startedAtKill = lines(effects).length;
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    client.close();
    const killedAt = Date.now();
    await new Promise((r) => setTimeout(r, 1000));
    const second = await startServer({ dataDir: first.dataDir, listen: first.address });
    client = new DroverClient(second.clientOptions);
    await waitFor(async () => (await client.fleet.list()).filter((a) => a.state === 'connected').length === 3, 30_000, () => 'agents to return');
    const reconnected = Date.now() - killedAt;
    const runs = await waitFor(
      async () => {
        const all = await Promise.all(ids.map((id) => client.runs.get(id)));
        return all.every((r) => isTerminal(r.status)) && all;
      },
      90_000,
      () => 'every run to finish',
    );
    const effectLines = lines(effects);
    let logLines = 0;
    for (const id of ids) {
      const logs = await storedLogs(second.dataDir, id);
      logLines += logs.length;
      for (const s of ['a', 'b', 'c']) expect(logs.filter((l) => l.step === s).map((l) => l.text)).toEqual([1, 2, 3].map((i) => `${s} line ${i}\n`));
    }
    console.log(
      `fault 2: ${RUNS} runs, control plane killed with ${startedAtKill} of ${RUNS * 3} steps started; agents back after ${reconnected} ms; ` +
        `all finished ${Date.now() - killedAt} ms after the kill; ${effectLines.length} step executions; ${logLines} log lines stored; ` +
        `${(second.output().match(/already stored before a restart/g) ?? []).length} resent log chunks recognised as already stored`,
    );
    expect(startedAtKill).toBeLessThan(RUNS * 3);
    expect(runs.map((r) => r.status)).toEqual(ids.map(() => 'succeeded'));
    expect(effectLines.length).toBe(RUNS * 3);
    expect(new Set(effectLines).size).toBe(RUNS * 3);
    client.close();
  });
});
