/**
 * Fault 8: an agent cut off (TCP proxy) mid-step is declared lost; with
 * `onAgentLost: retry` the step moves to another agent and succeeds there,
 * with `fail` it fails. Meanwhile the cut-off agent finishes its attempt.
 * After the link heals, that attempt's result and every line it printed are
 * kept under that attempt (status, `drover logs --attempt`), while the step
 * keeps the outcome the policy gave it.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DroverClient, type LogLine, type Run, type Step } from '../../sdk/index.js';
import { cli, startAgent, startServer, tempDir, waitFor, type AgentProc, type ServerProc } from '../helpers/cluster.js';
import { startProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { lines } from './fault-helpers.js';

/** Lines the step prints on each agent, one every 150 ms: 4.5 s of work, so cut-a is declared lost while it runs. */
const LINES = 30;
const printed = (agent: string) => Array.from({ length: LINES }, (_, i) => `${agent} line ${i + 1}`);

let server: ServerProc;
let proxy: TcpProxy;
let client: DroverClient;
const agents: AgentProc[] = [];
const dir = tempDir('drover-fault8-');

beforeAll(async () => {
  // Heartbeats every 200 ms: disconnected after 600 ms of silence, lost after 1.5 s.
  server = await startServer({ args: ['--heartbeat-interval-ms', '200', '--lost-after-ms', '1500'] });
  proxy = await startProxy(server.address);
  agents.push(startAgent({ address: proxy.address, enrollToken: server.enrollToken }, 'cut-a', { pool: 'partition' }));
  agents.push(startAgent(server, 'whole-b', { pool: 'partition' }));
  client = new DroverClient(server.clientOptions);
  await waitFor(async () => (await client.fleet.list()).filter((a) => a.state === 'connected').length === 2, 20_000, () => 'both agents to connect');
});

afterAll(async () => {
  client?.close();
  await Promise.all(agents.map((a) => a.stop()));
  await proxy?.close();
});

/**
 * Runs the partition scenario under `policy` and returns the final run,
 * the effects file (every attempt id that started, then "done <id>" at its
 * end) and the ticker step once the cut-off agent's late report is in.
 */
async function partitioned(policy: 'retry' | 'fail') {
  const effects = join(dir, `effects-${policy}`);
  const file = join(dir, `wf-${policy}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      name: `partition-${policy}`,
      onAgentLost: policy,
      steps: [
        // The ticker needs a step on cut-a, so it is placed there first (placement prefers the agent of its needs).
        { id: 'pin', target: { agent: 'cut-a' }, run: 'true' },
        {
          id: 'ticker',
          needs: ['pin'],
          target: { labels: { pool: 'partition' } },
          env: { E: effects, N: String(LINES) },
          run: 'echo "$DROVER_ATTEMPT_ID" >> "$E"; i=1; while [ $i -le $N ]; do echo "$DROVER_AGENT line $i"; i=$((i+1)); sleep 0.15; done; echo "done $DROVER_ATTEMPT_ID" >> "$E"',
        },
      ],
    }),
  );
  const handle = await client.runs.launch(file);
  // Cut once some of cut-a's lines have reached the control plane: the rest are printed while it is cut off.
  await waitFor(async () => (await collect(handle.id)).length >= 3, 15_000, () => 'the ticker to start printing on cut-a');
  proxy.cut();
  const cutAt = Date.now();
  await waitFor(async () => (await client.fleet.get('cut-a')).state === 'lost', 10_000, () => 'cut-a to be declared lost');
  const lostAt = Date.now();
  const run = await waitFor(async () => {
    const r = await client.runs.get(handle.id);
    return r.endedAt ? r : undefined;
  }, 20_000, () => `the run to end under onAgentLost: ${policy}`);
  // cut-a carries on cut off until its attempt is done.
  await waitFor(() => lines(effects).some((l) => l.startsWith('done ') && l.endsWith('/cut-a')), 15_000, () => "cut-a's attempt to finish while cut off");
  const before = ticker(await client.runs.get(handle.id));
  proxy.heal();
  const step = await waitFor(async () => {
    const s = ticker(await client.runs.get(handle.id));
    return s.attempts.some((a) => a.agent === 'cut-a' && a.status === 'succeeded') ? s : undefined;
  }, 20_000, () => "cut-a's late result to arrive after healing");
  console.log(`fault 9 (${policy}): cut-a lost ${lostAt - cutAt} ms after the cut; run ${run.status}; ${step.attempts.length} attempt(s) kept`);
  return { run, before, step, cutAt, effects: lines(effects), final: await client.runs.get(handle.id) };
}

const ticker = (run: Run): Step => run.steps.find((s) => s.id === 'ticker')!;

async function collect(runId: string, options: { stepId?: string; attempt?: number } = {}): Promise<LogLine[]> {
  const out: LogLine[] = [];
  for await (const line of client.logs(runId, options.stepId, { attempt: options.attempt })) out.push(line);
  return out;
}

describe('fault - a superseded attempt keeps its result and its lines', () => {
  it('fault - retry: the step succeeds on the other agent; the cut-off attempt and all its lines are kept under attempt 1', async () => {
    const { run, before, step, cutAt, effects, final } = await partitioned('retry');
    expect(run.status).toBe('succeeded');
    expect(final.status).toBe('succeeded');
    expect(step).toMatchObject({ agent: 'whole-b', status: 'succeeded' });
    // Each attempt ran exactly once.
    expect(effects.filter((l) => !l.startsWith('done ')).map((l) => l.split('/').slice(2).join('/'))).toEqual(['1/cut-a', '1/whole-b']);

    expect(before.attempts.map((a) => [a.number, a.agent, a.status, a.superseded])).toEqual([
      [1, 'cut-a', 'lost', true],
      [2, 'whole-b', 'succeeded', false],
    ]);
    const [a, b] = step.attempts;
    expect(a).toMatchObject({ number: 1, agent: 'cut-a', agentAttempt: 1, status: 'succeeded', exitCode: 0, superseded: true, note: 'completed on cut-a after the agent was declared lost' });
    expect(b).toMatchObject({ number: 2, agent: 'whole-b', agentAttempt: 1, status: 'succeeded', superseded: false });
    // Its real end, reported after the link healed: while it was cut off.
    expect(a.endedAt).toBeGreaterThan(cutAt);

    const first = await collect(run.id, { stepId: 'ticker', attempt: 1 });
    const second = await collect(run.id, { stepId: 'ticker', attempt: 2 });
    expect(first.map((l) => l.text)).toEqual(printed('cut-a'));
    expect(new Set(first.map((l) => l.attemptId))).toEqual(new Set([a.id]));
    expect(second.map((l) => l.text)).toEqual(printed('whole-b'));
    expect((await collect(run.id)).filter((l) => l.stepId === 'ticker')).toHaveLength(2 * LINES);

    // The CLI: one attempt's lines, every line labelled with its attempt, and the attempts in status.
    const one = await cli(['logs', run.id, '--step', 'ticker', '--attempt', '1'], server.env);
    expect(one.stdout).toBe(printed('cut-a').map((l) => `${l}\n`).join(''));
    const all = await cli(['logs', run.id], server.env);
    const tickerLines = all.stdout.split('\n').filter((l) => l.startsWith('ticker '));
    expect(tickerLines.filter((l) => l.startsWith('ticker #1 cut-a | '))).toHaveLength(LINES);
    expect(tickerLines.filter((l) => l.startsWith('ticker #2 whole-b | '))).toHaveLength(LINES);
    const status = await cli(['status', run.id], server.env);
    expect(status.stdout).toMatch(/Attempts:\n\s+STEP\s+#\s+AGENT\s+STATUS\s+EXIT\s+STARTED\s+ENDED\s+NOTE\n/);
    expect(status.stdout).toMatch(/ticker\s+1\s+cut-a\s+succeeded\s+0\s+\S+\s+\S+\s+superseded: completed on cut-a after the agent was declared lost\n/);
    expect(status.stdout).toMatch(/ticker\s+2\s+whole-b\s+succeeded\s+0\s+/);
    const json = JSON.parse((await cli(['status', run.id, '-o', 'json'], server.env)).stdout) as Run;
    expect(ticker(json).attempts.map((x) => [x.number, x.agent, x.superseded])).toEqual([
      [1, 'cut-a', true],
      [2, 'whole-b', false],
    ]);
    const missing = await cli(['logs', run.id, 'ticker', '--attempt', '3'], server.env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/error: step ticker of run \S+ has no attempt 3\nhint: its attempts are 1, 2/);
  });

  it('fault - fail: the step stays failed, yet the late completion and every line of it are kept', async () => {
    const { run, step, cutAt, effects, final } = await partitioned('fail');
    expect(run.status).toBe('failed');
    expect(final.status).toBe('failed');
    expect(step).toMatchObject({ agent: 'cut-a', status: 'failed' });
    expect(step.message).toMatch(/^agent cut-a was lost \(no contact for 1\.5s\)$/);
    expect(effects.filter((l) => !l.startsWith('done ')).map((l) => l.split('/').slice(2).join('/'))).toEqual(['1/cut-a']);
    expect(step.attempts).toHaveLength(1);
    expect(step.attempts[0]).toMatchObject({ number: 1, agent: 'cut-a', status: 'succeeded', superseded: true, note: 'completed on cut-a after the agent was declared lost' });
    expect(step.attempts[0].endedAt).toBeGreaterThan(Math.max(cutAt, run.endedAt));

    expect((await collect(run.id, { stepId: 'ticker', attempt: 1 })).map((l) => l.text)).toEqual(printed('cut-a'));
    const one = await cli(['logs', run.id, 'ticker', '--attempt', '1'], server.env);
    expect(one.stdout).toBe(printed('cut-a').map((l) => `${l}\n`).join(''));
    const status = await cli(['status', run.id], server.env);
    expect(status.stdout).toMatch(/ticker\s+1\s+cut-a\s+succeeded\s+0\s+\S+\s+\S+\s+superseded: completed on cut-a after the agent was declared lost\n/);
  });
});
