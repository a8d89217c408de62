/**
 * Figures 3 and 4 with simulated fleets (scripts/sim/fleet.ts in several
 * processes, speaking the real protocol over real sockets), a fresh control
 * plane per fleet so each one's memory is its own:
 *
 * 3. fan-out: one step with `strategy: all` to every agent of the fleet,
 *    against a one-step run on one of those agents;
 * 4. idle fleet: the connected fleet heartbeating (every 5 s) for a window,
 *    control-plane CPU against the least a process receiving the same
 *    messages must spend (over NATS: a bare nats.js subscriber on the same
 *    subjects that decodes headers and protobuf, nats-floor.ts; over gRPC,
 *    where no such bystander can listen: the simulators sending them), and
 *    its memory against the same control plane before any agent connected.
 */
import { fork } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DroverClient, type Run, type WorkflowDocument } from '../../../sdk/index.js';
import { startNatsCluster, startNatsServer, type NatsServer } from '../../lib/nats-server.js';
import type { BenchContext, FigureResult } from '../context.js';
import { sample, sleep, startServer, startStandby, type Proc } from '../procs.js';
import { clientOptionsFor } from '../../lib/credentials.js';
import { p50, percentile, row, type Row } from '../report.js';
import { SimPool } from '../sim-pool.js';

const MB = 1024 * 1024;

export interface FleetPlan {
  transport: 'grpc' | 'nats';
  agents: number;
  /** Fan-out runs measured (p50 reported). */
  repeats: number;
  /** Measure the idle fleet for this long before the fan-outs (0: not). */
  idleMs: number;
  /**
   * 3: a replicated control plane instead of one process on lowdb: three
   * replicas with `--store jetstream` on a 3-node nats-server cluster (one
   * leads, two stand by), the agents on that cluster.
   */
  replicas?: 3;
}

export function fleetPlans(quick: boolean): FleetPlan[] {
  if (quick) {
    return [
      { transport: 'grpc', agents: 100, repeats: 2, idleMs: 0 },
      { transport: 'nats', agents: 100, repeats: 2, idleMs: 0 },
      { transport: 'nats', agents: 1000, repeats: 2, idleMs: 5000 },
      { transport: 'nats', agents: 100, repeats: 2, idleMs: 0, replicas: 3 },
    ];
  }
  const plans: FleetPlan[] = [];
  for (const agents of [100, 1000, 10_000]) {
    for (const transport of ['grpc', 'nats'] as const) {
      plans.push({ transport, agents, repeats: 3, idleMs: agents >= 10_000 ? 60_000 : 0 });
    }
  }
  for (const agents of [1000, 10_000]) plans.push({ transport: 'nats', agents, repeats: 3, idleMs: 0, replicas: 3 });
  return plans;
}

const fanOut = (label: string): WorkflowDocument => ({
  name: 'bench-fanout',
  steps: [{ id: 'noop', target: { labels: { fleet: label }, strategy: 'all' }, run: 'true' }],
});

const one = (agent: string): WorkflowDocument => ({
  name: 'bench-one',
  steps: [{ id: 'noop', target: { agent }, run: 'true' }],
});

async function timedRun(client: DroverClient, doc: WorkflowDocument): Promise<{ ms: number; run: Run }> {
  const t0 = performance.now();
  const handle = await client.runs.launch(doc);
  const run = await handle.wait();
  const ms = performance.now() - t0;
  if (run.status !== 'succeeded') throw new Error(`benchmark run ${run.id} ${run.status}: ${run.message}`);
  return { ms, run };
}

/** ms from the run's start to each step instance's end (the run's step records). */
function stepLatencies(run: Run): number[] {
  const instances = run.steps.filter((s) => s.parent !== '');
  return (instances.length ? instances : run.steps).map((s) => s.endedAt - run.startedAt);
}

/** Starts nats-floor.ts and waits until it subscribed. */
async function startFloor(url: string) {
  const child = fork(join(import.meta.dirname, '../nats-floor.ts'), [url], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise((res, rej) => {
    child.once('message', res);
    child.once('exit', (code) => rej(new Error(`nats-floor.ts exited (${code})`)));
  });
  return child;
}

interface FleetOutcome {
  fanOut: Row[];
  idle: Row[];
  details: Record<string, unknown>;
}

/** The plan's key in row ids: `nats.1000`, or `nats-r3.1000` for a replicated control plane. */
const planKey = (plan: FleetPlan) => `${plan.transport}${plan.replicas ? `-r${plan.replicas}` : ''}.${plan.agents}`;

/**
 * `singleRow`: the same fleet's figure with one control-plane process, when
 * this run measured it: a replicated plan's baseline.
 */
async function measureFleet(ctx: BenchContext, plan: FleetPlan, nats: NatsServer | undefined, singleRow?: Row): Promise<FleetOutcome> {
  const key = planKey(plan);
  const name = `fleet-${key.replace('.', '-')}`;
  const cluster = plan.replicas ? await startNatsCluster() : undefined;
  const natsUrl = cluster ? cluster.urls : nats?.url;
  const storeArgs = cluster ? ['--store', 'jetstream', '--store-replicas', '3'] : [];
  const standbys: Proc[] = [];
  const server = await startServer({ dir: ctx.dir, name, nats: plan.transport === 'nats' || cluster ? natsUrl : undefined, profileDir: ctx.profileDir, args: storeArgs });
  const client = new DroverClient(clientOptionsFor(server.address, server.creds));
  const label = `${plan.transport}-${plan.agents}${plan.replicas ? '-r' : ''}`;
  let pool: SimPool | undefined;
  try {
    for (let i = 1; cluster && i < plan.replicas!; i++) standbys.push(await startStandby({ dir: ctx.dir, name: `${name}-standby${i}`, from: server.dataDir, args: ['--nats', natsUrl!, ...storeArgs] }));
    await client.fleet.list();
    await sleep(500);
    const before = sample(server.pid);
    const processes = plan.agents >= 10_000 ? 4 : plan.agents >= 1000 ? 2 : 1;
    ctx.progress(`figure 3${plan.idleMs ? '-4' : ''}: ${plan.agents} simulated agents over ${plan.transport} in ${processes} process${processes > 1 ? 'es' : ''}${cluster ? ', control plane: 3 replicas on a 3-node JetStream cluster' : ''}`);
    pool = await SimPool.start({
      transport: plan.transport,
      address: plan.transport === 'nats' ? natsUrl! : server.address,
      enrollAddress: server.address,
      enrollToken: server.enrollToken,
      count: plan.agents,
      processes,
      prefix: `${plan.transport[0]}${plan.agents}-`,
      labels: { fleet: label },
      // gRPC: 2,000 new connections a second, within what Node's accept queue takes (see SimOptions.rampMs).
      rampMs: plan.transport === 'grpc' ? plan.agents / 2 : 0,
    });
    const connectMs = await pool.connected(plan.agents >= 10_000 ? 180_000 : 60_000);
    const details: Record<string, unknown> = { processes, connectMs, rssBeforeAgentsMB: before.rssBytes / MB };

    const idle: Row[] = [];
    if (plan.idleMs) {
      const floor = plan.transport === 'nats' ? await startFloor(nats!.url) : undefined;
      // Let the connection burst settle and heartbeats spread over their interval.
      await sleep(ctx.quick ? 1000 : 6000);
      const cp0 = sample(server.pid);
      const sims0 = pool.cpuSeconds();
      const nats0 = nats && plan.transport === 'nats' ? sample(nats.pid).cpuSeconds : 0;
      const floor0 = floor ? sample(floor.pid!).cpuSeconds : 0;
      const t0 = performance.now();
      ctx.progress(`figure 4: ${plan.agents} idle ${plan.transport} agents for ${plan.idleMs / 1000} s`);
      await sleep(plan.idleMs);
      const seconds = (performance.now() - t0) / 1000;
      const cp1 = sample(server.pid);
      const simsPercent = (100 * (pool.cpuSeconds() - sims0)) / seconds;
      const cpPercent = (100 * (cp1.cpuSeconds - cp0.cpuSeconds)) / seconds;
      const natsPercent = nats && plan.transport === 'nats' ? (100 * (sample(nats.pid).cpuSeconds - nats0)) / seconds : undefined;
      const floorPercent = floor ? (100 * (sample(floor.pid!).cpuSeconds - floor0)) / seconds : undefined;
      const floorReceived = floor ? await new Promise<number>((r) => (floor.once('message', (m: { received: number }) => r(m.received)), floor.send('count'))) : undefined;
      floor?.kill();
      const stats = await pool.stats();
      idle.push(
        row({
          id: `idleFleet.${key}.cpuPercent`,
          figure: '4 idle fleet',
          what: `${plan.agents.toLocaleString('en-US')} idle agents (${plan.transport}), control-plane CPU over ${Math.round(seconds)} s`,
          value: cpPercent,
          unit: '% of a core',
          baseline: floorPercent !== undefined ? { what: 'bare NATS subscriber', value: floorPercent, unit: '%' } : { what: 'simulators', value: simsPercent, unit: '%' },
          target: plan.agents >= 10_000 ? { op: '<', limit: 10, text: '< 10% of one core' } : undefined,
          note:
            floorPercent !== undefined
              ? 'baseline: a nats.js subscriber on the same subjects that only reads headers and decodes each message (scripts/bench/nats-floor.ts)'
              : 'baseline: CPU of the simulator processes that send the heartbeats, over the same window',
        }),
        row({
          id: `idleFleet.${key}.rssMB`,
          figure: '4 idle fleet',
          what: `${plan.agents.toLocaleString('en-US')} idle agents (${plan.transport}), control-plane RSS`,
          value: cp1.rssBytes / MB,
          unit: 'MB',
          baseline: { what: 'before agents', value: before.rssBytes / MB, unit: 'MB' },
          target: plan.agents >= 10_000 ? { op: '<', limit: 1024, text: '< 1 GiB' } : undefined,
        }),
      );
      details.idle = {
        seconds,
        cpPercent,
        simsPercent,
        natsServerPercent: natsPercent,
        bareSubscriberPercent: floorPercent,
        bareSubscriberMessages: floorReceived,
        rssMB: cp1.rssBytes / MB,
        peakRssMB: cp1.peakRssBytes / MB,
        stillConnected: stats.connected,
      };
    }

    ctx.progress(`figure 3: fan-out to ${plan.agents} ${plan.transport} agents, ${plan.repeats} run${plan.repeats > 1 ? 's' : ''}`);
    const single: { ms: number; cpu: number; latency: number }[] = [];
    for (let i = 0; i < 4; i++) {
      const c0 = sample(server.pid).cpuSeconds;
      const { ms, run } = await timedRun(client, one(pool.firstAgent()));
      if (i > 0) single.push({ ms, cpu: sample(server.pid).cpuSeconds - c0, latency: stepLatencies(run)[0] });
    }
    const runs: { ms: number; cpRunMs: number; cpu: number; p50: number; p99: number }[] = [];
    for (let i = 0; i < plan.repeats; i++) {
      const c0 = sample(server.pid).cpuSeconds;
      const { ms, run } = await timedRun(client, fanOut(label));
      const cpu = sample(server.pid).cpuSeconds - c0;
      const lat = stepLatencies(run);
      if (lat.length !== plan.agents) throw new Error(`fan-out ran ${lat.length} instances, expected ${plan.agents}`);
      runs.push({ ms, cpRunMs: run.endedAt - run.startedAt, cpu, p50: p50(lat), p99: percentile(lat, 0.99) });
    }
    const after = sample(server.pid);
    const m = (k: keyof (typeof runs)[number]) => p50(runs.map((r) => r[k]));
    const oneMs = p50(single.map((s) => s.ms));
    const n = plan.agents.toLocaleString('en-US');
    const fig = '3 fan-out';
    const target =
      plan.agents === 1000
        ? { op: '<' as const, limit: 1000, text: '1,000 agents < 1 s' }
        : plan.agents === 10_000 && plan.transport === 'nats'
          ? { op: '<' as const, limit: 10_000, text: '10,000 over NATS < 10 s' }
          : undefined;
    const via = plan.replicas ? `${plan.transport}, ${plan.replicas} replicas on JetStream` : plan.transport;
    const fanOutRows = [
      row({
        id: `fanOut.${key}.completeMs`,
        figure: fig,
        what: `${n} agents (${via}): submit to done (p50 of ${plan.repeats})`,
        value: m('ms'),
        unit: 'ms',
        baseline: { what: '1-agent run', value: oneMs, unit: 'ms' },
        target: plan.replicas ? undefined : target,
      }),
      ...(singleRow
        ? [
            row({
              id: `fanOut.${key}.vsSingleMs`,
              figure: fig,
              what: `${n} agents (${via}): submit to done, against one control-plane process on lowdb`,
              value: m('ms'),
              unit: 'ms',
              baseline: { what: 'one process', value: singleRow.value, unit: 'ms' },
              note: 'the same fleet and fan-out earlier in this run, with one control plane and its state in its data dir',
            }),
          ]
        : []),
      row({
        id: `fanOut.${key}.stepsPerSecond`,
        figure: fig,
        what: `${n} agents (${via}): steps dispatched and done per second`,
        value: (plan.agents * 1000) / m('ms'),
        unit: 'steps/s',
        baseline: { what: '1-agent run', value: 1000 / oneMs, unit: 'steps/s' },
      }),
      row({
        id: `fanOut.${key}.p50StepMs`,
        figure: fig,
        what: `${n} agents (${via}): step latency p50 (run start to step end)`,
        value: m('p50'),
        unit: 'ms',
        baseline: { what: '1-agent run', value: p50(single.map((s) => s.latency)), unit: 'ms' },
      }),
      row({
        id: `fanOut.${key}.p99StepMs`,
        figure: fig,
        what: `${n} agents (${via}): step latency p99`,
        value: m('p99'),
        unit: 'ms',
        baseline: { what: '1-agent run', value: p50(single.map((s) => s.latency)), unit: 'ms' },
      }),
      row({
        id: `fanOut.${key}.cpuSeconds`,
        figure: fig,
        what: `${n} agents (${via}): control-plane CPU per fan-out run`,
        value: m('cpu'),
        unit: 's',
        baseline: { what: '1-agent run', value: p50(single.map((s) => s.cpu)), unit: 's' },
        note: 'CPU ticks are 10 ms: a tiny baseline is coarse',
      }),
      row({
        id: `fanOut.${key}.peakRssMB`,
        figure: fig,
        what: `${n} agents (${via}): control-plane peak RSS`,
        value: after.peakRssBytes / MB,
        unit: 'MB',
        baseline: { what: 'before agents', value: before.rssBytes / MB, unit: 'MB' },
      }),
    ];
    Object.assign(details, { runs, single, cpCpuSecondsTotal: after.cpuSeconds });
    return { fanOut: fanOutRows, idle, details };
  } finally {
    client.close();
    await pool?.stop();
    await server.stop();
    await Promise.all(standbys.map((s) => s.stop()));
    await cluster?.stop();
  }
}

export async function fleetFigures(ctx: BenchContext): Promise<{ fanOut: FigureResult; idle: FigureResult }> {
  const all = fleetPlans(ctx.quick);
  const plans = ctx.fleets ? all.filter((p) => ctx.fleets!.has(planKey(p))) : all;
  if (!plans.length) throw new Error(`--fleets ${[...ctx.fleets!].join(',')} names none of this run's fleets: ${all.map(planKey).join(', ')}`);
  const nats = plans.some((p) => p.transport === 'nats') ? await startNatsServer() : undefined;
  const fanOut: FigureResult = { rows: [], details: {} };
  const idle: FigureResult = { rows: [], details: {} };
  try {
    for (const plan of plans) {
      const single = plan.replicas ? fanOut.rows.find((r) => r.id === `fanOut.${planKey({ ...plan, replicas: undefined })}.completeMs`) : undefined;
      const out = await measureFleet(ctx, plan, nats, single);
      fanOut.rows.push(...out.fanOut);
      idle.rows.push(...out.idle);
      fanOut.details[planKey(plan)] = out.details;
      if (out.idle.length) idle.details[planKey(plan)] = out.details.idle;
    }
  } finally {
    await nats?.stop();
    // Beside the control planes' logs: a dropped client or a slow consumer shows there.
    if (nats) writeFileSync(join(ctx.dir, 'nats-server.log'), nats.output());
  }
  return { fanOut, idle };
}
