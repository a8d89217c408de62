/**
 * Figures 1, 2 and 6 on one control plane with two real agents:
 *
 * 1. per-step overhead: a 20-step sequential chain of `true` on one agent,
 *    against 20 sequential `sh -c true` spawned directly (the floor);
 * 2. cross-agent hop: the same chain alternating between the two agents,
 *    against the chain on one agent;
 * 6. throughput: 3-step runs submitted back to back by 10 SDK clients at
 *    once, against one client doing the same.
 */
import { spawn } from 'node:child_process';
import { DroverClient, type Run, type WorkflowDocument } from '../../../sdk/index.js';
import type { BenchContext, FigureResult } from '../context.js';
import { startAgent, startServer, waitFor, type Proc, type ServerProc } from '../procs.js';
import { clientOptionsFor } from '../../lib/credentials.js';
import { p50, percentile, row } from '../report.js';

const STEPS = 20;

/** A chain s0 -> s1 -> ... -> s19 of `true`, step i on agents[i % agents.length]. */
function chain(name: string, agents: string[]): WorkflowDocument {
  return {
    name,
    steps: Array.from({ length: STEPS }, (_, i) => ({
      id: `s${i}`,
      ...(i ? { needs: [`s${i - 1}`] } : {}),
      target: { agent: agents[i % agents.length] },
      run: 'true',
    })),
  };
}

const THREE_STEPS: WorkflowDocument = {
  name: 'bench-three',
  steps: [
    { id: 'a', target: { labels: { role: 'bench' } }, run: 'true' },
    { id: 'b', needs: ['a'], target: { labels: { role: 'bench' } }, run: 'true' },
    { id: 'c', needs: ['b'], target: { labels: { role: 'bench' } }, run: 'true' },
  ],
};

/** ms for `count` sequential `/bin/sh -c true`, spawned the way the agent spawns steps. */
async function directShell(count: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    await new Promise<void>((res, rej) => {
      const child = spawn('/bin/sh', ['-c', 'true'], { env: { ...process.env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      child.once('error', rej);
      child.once('close', () => res());
    });
  }
  return performance.now() - t0;
}

async function runOnce(client: DroverClient, doc: WorkflowDocument): Promise<Run> {
  const handle = await client.runs.launch(doc);
  const run = await handle.wait();
  if (run.status !== 'succeeded') throw new Error(`benchmark run ${run.id} ${run.status}: ${run.message}`);
  return run;
}

/** Cycle time of a run as the control plane recorded it: start to end. */
const cycleMs = (r: Run) => r.endedAt - r.startedAt;

export interface StepsCluster {
  server: ServerProc;
  agents: Proc[];
  client: DroverClient;
  stop(): Promise<void>;
}

/** A control plane and two real agents (node dist/agent/main.js), labelled role=bench. */
export async function startStepsCluster(ctx: BenchContext): Promise<StepsCluster> {
  const server = await startServer({ dir: ctx.dir, name: 'steps-server', profileDir: ctx.profileDir });
  const agents = ['bench-a', 'bench-b'].map((name) => startAgent({ dir: ctx.dir, name, server: server.address, token: server.enrollToken, labels: { role: 'bench' } }));
  const client = new DroverClient(clientOptionsFor(server.address, server.creds));
  await waitFor(
    async () => (await client.fleet.list()).filter((a) => a.state === 'connected' && a.name.startsWith('bench-')).length === 2,
    30_000,
    () => 'the two benchmark agents to connect',
  );
  return {
    server,
    agents,
    client,
    async stop() {
      client.close();
      await Promise.all(agents.map((a) => a.stop()));
      await server.stop();
    },
  };
}

export async function stepFigures(ctx: BenchContext, cl: StepsCluster): Promise<{ overhead: FigureResult; hop: FigureResult }> {
  const repeats = ctx.quick ? 5 : 25;
  const local = chain('bench-local', ['bench-a']);
  const alternating = chain('bench-hop', ['bench-a', 'bench-b']);
  ctx.progress(`figures 1-2: ${repeats} runs each of a ${STEPS}-step chain on one agent, alternating over two, and ${STEPS} direct sh -c true`);
  // Warm up: the first runs pay for JIT compilation and first spawns.
  for (let i = 0; i < 3; i++) {
    await runOnce(cl.client, local);
    await runOnce(cl.client, alternating);
    await directShell(STEPS);
  }
  const direct: number[] = [];
  const onOne: number[] = [];
  const onTwo: number[] = [];
  // Interleaved, so drift in the machine's load touches all three alike.
  for (let i = 0; i < repeats; i++) {
    direct.push((await directShell(STEPS)) / STEPS);
    onOne.push(cycleMs(await runOnce(cl.client, local)) / STEPS);
    onTwo.push(cycleMs(await runOnce(cl.client, alternating)) / STEPS);
  }
  const floor = p50(direct);
  const perStep = p50(onOne);
  const perStepTwo = p50(onTwo);
  // Every step of the alternating chain but the first waits on the other agent.
  const hops: number[] = onTwo.map((t, i) => ((t - onOne[i]) * STEPS) / (STEPS - 1));
  const perHop = p50(hops);
  const overhead: FigureResult = {
    rows: [
      row({
        id: 'stepOverhead.perStepAboveFloor',
        figure: '1 per-step overhead',
        what: `${STEPS}-step chain on 1 agent, per step above sh -c true (p50 of ${repeats})`,
        value: perStep - floor,
        unit: 'ms',
        baseline: { what: 'sh -c true', value: floor, unit: 'ms' },
        ratio: perStep / floor,
        target: { op: '<=', limit: 1, text: '≤ 1 ms/step above the floor' },
        note: 'ratio: cycle time per step / direct sh -c true per step',
      }),
    ],
    details: { repeats, steps: STEPS, directPerStepMs: direct, chainPerStepMs: onOne, p50PerStepMs: perStep, p50FloorMs: floor, p90PerStepMs: percentile(onOne, 0.9) },
  };
  const hop: FigureResult = {
    rows: [
      row({
        id: 'crossAgentHop.perHop',
        figure: '2 cross-agent hop',
        what: `${STEPS}-step chain alternating 2 agents, cost per hop (p50 of ${repeats})`,
        value: perHop,
        unit: 'ms',
        baseline: { what: 'per step, chain on 1 agent', value: perStep, unit: 'ms' },
        ratio: perStepTwo / perStep,
        target: { op: '<=', limit: 2, text: '≤ 2 ms p50 on loopback' },
        note: 'hop = (alternating cycle - one-agent cycle) / 19 hops; ratio: per-step time alternating / on one agent',
      }),
    ],
    details: { repeats, alternatingPerStepMs: onTwo, perHopMs: hops, p50AlternatingPerStepMs: perStepTwo, p90PerHopMs: percentile(hops, 0.9) },
  };
  return { overhead, hop };
}

/** Clients each submitting runs back to back until `ms` has passed; completed runs per second. */
async function backToBack(server: ServerProc, clients: number, ms: number): Promise<{ runsPerSecond: number; runs: number; latencyMs: number[] }> {
  const sdk = Array.from({ length: clients }, () => new DroverClient(clientOptionsFor(server.address, server.creds)));
  const latencyMs: number[] = [];
  const t0 = performance.now();
  const until = t0 + ms;
  await Promise.all(
    sdk.map(async (c) => {
      while (performance.now() < until) {
        const t = performance.now();
        await runOnce(c, THREE_STEPS);
        latencyMs.push(performance.now() - t);
      }
    }),
  );
  const elapsed = performance.now() - t0;
  sdk.forEach((c) => c.close());
  return { runsPerSecond: (latencyMs.length * 1000) / elapsed, runs: latencyMs.length, latencyMs };
}

export async function throughputFigure(ctx: BenchContext, cl: StepsCluster): Promise<FigureResult> {
  const oneMs = ctx.quick ? 2000 : 8000;
  const tenMs = ctx.quick ? 3000 : 15_000;
  ctx.progress(`figure 6: 3-step runs back to back, 1 client for ${oneMs / 1000} s, then 10 clients for ${tenMs / 1000} s`);
  await backToBack(cl.server, 2, 500);
  const one = await backToBack(cl.server, 1, oneMs);
  const ten = await backToBack(cl.server, 10, tenMs);
  return {
    rows: [
      row({
        id: 'throughput.runsPerSecond',
        figure: '6 throughput',
        what: '3-step runs/s, 10 concurrent SDK clients',
        value: ten.runsPerSecond,
        unit: 'runs/s',
        baseline: { what: '1 client', value: one.runsPerSecond, unit: 'runs/s' },
      }),
    ],
    details: {
      tenClients: { runs: ten.runs, seconds: tenMs / 1000, p50LatencyMs: p50(ten.latencyMs), p99LatencyMs: percentile(ten.latencyMs, 0.99) },
      oneClient: { runs: one.runs, seconds: oneMs / 1000, p50LatencyMs: p50(one.latencyMs), p99LatencyMs: percentile(one.latencyMs, 0.99) },
    },
  };
}
