/**
 * Fault 1: the agent dies, its steps do not. SIGKILLs of the `drover agent`
 * pid at random moments across a chain of steps, and an upgrade (stop,
 * replace the executable, start) during a 10 s step: every step's work
 * happens exactly once (side-effect counters), the agent that comes back
 * re-attaches to what runs and reports its real end, and every line each
 * step printed is stored exactly once, in order.
 */
import { copyFileSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DroverClient } from '../../sdk/index.js';
import { agentBinary } from '../helpers/agent-binary.js';
import { startAgentCommand, startServer, tempDir, waitFor, type AgentProc, type ServerProc } from '../helpers/cluster.js';
import { lines, storedLogs } from './fault-helpers.js';

const STEPS = 10;
const KILLS = 20;
const LINES = 6;

async function kill(agent: AgentProc) {
  const gone = new Promise((r) => agent.child.once('exit', r));
  agent.expectExit();
  agent.child.kill('SIGKILL');
  await gone;
}

async function connected(client: DroverClient, name: string) {
  await waitFor(async () => (await client.fleet.list()).some((a) => a.name === name && a.state === 'connected'), 20_000, () => `${name} to connect`);
}

/** Each line `<step> START|END <attempt id>` of the side-effect file, counted per step. */
function counts(file: string): Map<string, { start: number; end: number }> {
  const out = new Map<string, { start: number; end: number }>();
  for (const l of lines(file)) {
    const [step, what] = l.split(' ');
    const c = out.get(step) ?? { start: 0, end: 0 };
    if (what === 'START') c.start++;
    if (what === 'END') c.end++;
    out.set(step, c);
  }
  return out;
}

function workflow(dir: string, name: string, steps: { id: string; lines: number; pause: number }[], target: string) {
  const effects = join(dir, 'effects');
  const file = join(dir, `${name}.json`);
  const json = steps.map((s, i) => ({
    id: s.id,
    needs: i ? [steps[i - 1].id] : [],
    target: { agent: target },
    retry: { attempts: 30, backoff: 'fixed', initial: '100ms' },
    env: { EFFECTS: effects },
    run: `echo "${s.id} START $DROVER_ATTEMPT_ID" >> "$EFFECTS"; i=1; while [ $i -le ${s.lines} ]; do echo "${s.id} line $i"; sleep ${s.pause}; i=$((i+1)); done; echo "${s.id} END $DROVER_ATTEMPT_ID" >> "$EFFECTS"`,
  }));
  writeFileSync(file, JSON.stringify({ name, steps: json }));
  return { file, effects };
}

async function expectExactlyOnce(server: ServerProc, runId: string, effects: string, steps: { id: string; lines: number }[]) {
  const c = counts(effects);
  const logs = await storedLogs(server.dataDir, runId);
  for (const s of steps) {
    expect(c.get(s.id), `side effects of ${s.id}`).toEqual({ start: 1, end: 1 });
    expect(logs.filter((l) => l.step === s.id).map((l) => l.text)).toEqual(Array.from({ length: s.lines }, (_, i) => `${s.id} line ${i + 1}\n`));
  }
}

describe('fault - agent killed, steps survive', () => {
  it(`fault - ${KILLS} SIGKILLs of the drover agent pid at random moments: every step's work happens exactly once`, async () => {
    const server = await startServer();
    const stateDir = tempDir('drover-victim-');
    let agent = startAgentCommand(server, 'victim', { role: 'victim' }, stateDir);
    const client = new DroverClient(server.clientOptions);
    const dir = tempDir('drover-fault1-');
    const steps = Array.from({ length: STEPS }, (_, i) => ({ id: `s${i}`, lines: LINES, pause: 0.1 }));
    const { file, effects } = workflow(dir, 'kill-chain', steps, 'victim');
    await connected(client, 'victim');
    const handle = await client.runs.launch(file);

    const t0 = Date.now();
    let kills = 0;
    // Random moments: while steps run, between them, while the agent starts or re-attaches.
    while (kills < KILLS && Date.now() - t0 < 90_000) {
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 700));
      if (counts(effects).get(`s${STEPS - 1}`)?.end) break;
      await kill(agent);
      kills++;
      agent = startAgentCommand(server, 'victim', { role: 'victim' }, stateDir);
    }
    const run = await handle.wait();
    const started = lines(effects).filter((l) => l.includes(' START ')).length;
    console.log(`fault 1: ${kills} kills; ${started} step starts for ${STEPS} steps; run ${run.status} in ${Date.now() - t0} ms; attempts ${run.steps.map((s) => s.attempt).join(',')}`);

    expect(kills).toBeGreaterThanOrEqual(10);
    expect(run.status).toBe('succeeded');
    await expectExactlyOnce(server, run.id, effects, steps);
    client.close();
  });

  it('fault - an agent upgrade (stop, replace the executable, start) during a 10 s step: it finishes once and all its output arrives', async () => {
    const server = await startServer();
    const stateDir = tempDir('drover-upgrade-');
    const binDir = join(tempDir('drover-upgrade-bin-'), 'bin');
    mkdirSync(binDir);
    const bin = join(binDir, 'drover-agent');
    copyFileSync(agentBinary(), bin);
    let agent = startAgentCommand(server, 'edge', { role: 'edge' }, stateDir, bin);
    const client = new DroverClient(server.clientOptions);
    const dir = tempDir('drover-upgrade-wf-');
    const steps = [{ id: 'long', lines: 20, pause: 0.5 }];
    const { file, effects } = workflow(dir, 'upgrade', steps, 'edge');
    await connected(client, 'edge');
    const handle = await client.runs.launch(file);
    await waitFor(async () => (await storedLogs(server.dataDir, handle.id)).length >= 4 || undefined, 20_000, () => 'the step to print');

    // What an installer does: stop the service, put the new executable in place atomically, start it.
    await agent.stop('SIGTERM');
    const next = `${bin}.new`;
    copyFileSync(agentBinary(), next);
    renameSync(next, bin);
    await new Promise((r) => setTimeout(r, 1500));
    agent = startAgentCommand(server, 'edge', { role: 'edge' }, stateDir, bin);

    const run = await handle.wait();
    expect(run.status).toBe('succeeded');
    expect(run.steps[0].attempt).toBe(1);
    await expectExactlyOnce(server, run.id, effects, steps);
    expect(agent.output()).toContain('re-attached');
    client.close();
  });

  it('fault - a step moved away while its agent was down is stopped when the agent returns; its lines and its end are kept under its attempt', async () => {
    const server = await startServer({ args: ['--heartbeat-interval-ms', '200', '--lost-after-ms', '1500'] });
    const dirs = { 'moved-a': tempDir('drover-moved-a-'), 'moved-b': tempDir('drover-moved-b-') };
    const agents = { 'moved-a': startAgentCommand(server, 'moved-a', { pool: 'moved' }, dirs['moved-a']), 'moved-b': startAgentCommand(server, 'moved-b', { pool: 'moved' }, dirs['moved-b']) };
    const client = new DroverClient(server.clientOptions);
    await connected(client, 'moved-a');
    await connected(client, 'moved-b');
    const dir = tempDir('drover-moved-wf-');
    const effects = join(dir, 'effects');
    const file = join(dir, 'moved.json');
    // The first attempt would run for 50 s: it still runs when its agent comes back, long after the second (2 s) finished.
    const first = join(dir, 'first');
    const run = `n=8; mkdir "${first}" 2>/dev/null && n=200; echo "long START $DROVER_AGENT" >> "${effects}"; i=1; while [ $i -le $n ]; do echo "line $i on $DROVER_AGENT"; sleep 0.25; i=$((i+1)); done; echo "long END $DROVER_AGENT" >> "${effects}"`;
    writeFileSync(file, JSON.stringify({ name: 'moved', onAgentLost: 'retry', steps: [{ id: 'long', target: { labels: { pool: 'moved' } }, run }] }));
    const handle = await client.runs.launch(file);
    const name = (await waitFor(async () => (await client.runs.get(handle.id)).steps[0].agent || undefined, 10_000, () => 'the step to be placed')) as 'moved-a' | 'moved-b';
    const other = name === 'moved-a' ? 'moved-b' : 'moved-a';
    await waitFor(async () => (await storedLogs(server.dataDir, handle.id)).length >= 3 || undefined, 20_000, () => 'the step to print');
    await kill(agents[name]);
    // Lost, moved to the other agent, done there; only then does the first one come back.
    const done = await handle.wait();
    expect(done.status).toBe('succeeded');
    expect(done.steps[0].agent).toBe(other);
    const a = startAgentCommand(server, name, { pool: 'moved' }, dirs[name]);
    const step = await waitFor(
      async () => {
        const s = (await client.runs.get(handle.id)).steps[0];
        return s.attempts.find((x) => x.agent === name && x.status !== 'running' && x.status !== 'lost') ? s : undefined;
      },
      20_000,
      () => `${name}'s attempt to be settled:\n${a.output().slice(-2000)}`,
    );
    const onA = step.attempts.find((x) => x.agent === name)!;
    expect(onA.status).toBe('cancelled');
    expect(onA.superseded).toBe(true);
    // The first attempt's process was stopped: it started once and never ended; the second ran once.
    expect(lines(effects).sort()).toEqual([`long END ${other}`, `long START ${name}`, `long START ${other}`].sort());
    // Every line the first attempt printed, before and after its agent was killed, is kept once, in order.
    const fromA = (await storedLogs(server.dataDir, handle.id)).filter((l) => l.attempt === onA.id).map((l) => l.text);
    expect(fromA.length).toBeGreaterThan(3);
    expect(fromA).toEqual(Array.from({ length: fromA.length }, (_, i) => `line ${i + 1} on ${name}\n`));
    client.close();
  });
});
