/**
 * `npm run bench`: how far one control plane goes, with numbers (docs/performance.md).
 * Real processes on 127.0.0.1: the built control plane and agents, the agent
 * executable when built, a real nats-server, and simulated fleets. Every
 * figure is measured against a baseline from the same run and reported as a
 * ratio too; the table goes to stdout, everything to bench/results.json.
 *
 *   npm run bench                      # full: about 5-8 minutes
 *   npm run bench -- --quick           # reduced sizes and windows: under a minute
 *   npm run bench -- --profile         # also write control-plane CPU profiles (node --cpu-prof)
 *   npm run bench -- --only 3,4        # some figures only
 *   npm run bench -- --only 8          # reading a 200,000-line log back (`--quick --only 8`: 20,000 lines)
 *   npm run bench -- --only 9          # CLI start-up against node -e 0 (`--cli PATH` times another build's CLI)
 *   npm run bench -- --only 3 --fleets nats.10000,nats-r3.10000
 *                                      # some fleets of figures 3-4 only: TRANSPORT[-r3].AGENTS (-r3: three replicas on JetStream)
 */
import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { BenchContext, FigureResult } from './context.js';
import { startFootprint } from './figures/footprint.js';
import { signingFigure } from './figures/signing.js';
import { quietIpServerNameWarning } from '../../common/tls.js';
import { fleetFigures } from './figures/fleet.js';
import { logsFigure } from './figures/logs.js';
import { cliFigure, defaultCli } from './figures/cli.js';
import { startStepsCluster, stepFigures, throughputFigure } from './figures/steps.js';
import { ENTRY, killAll, ROOT, workDir } from './procs.js';
import { gitCommit, machine, table, writeResults, type Results } from './report.js';

quietIpServerNameWarning();

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    'profile-dir': { type: 'string' },
    only: { type: 'string' },
    out: { type: 'string', default: join(ROOT, 'bench/results.json') },
    'keep-dir': { type: 'boolean', default: false },
    cli: { type: 'string' },
    fleets: { type: 'string' },
  },
});

const FIGURES = {
  stepOverhead: 1,
  crossAgentHop: 2,
  fanOut: 3,
  idleFleet: 4,
  agentFootprint: 5,
  throughput: 6,
  signing: 7,
  logs: 8,
  cliStartup: 9,
} as const;
type FigureKey = keyof typeof FIGURES;

// --quick leaves figure 8 out unless asked for: quick runs stay under a minute (test/integration/bench-quick.test.ts lists their figures).
const only = new Set((args.only ?? (args.quick ? '1,2,3,4,5,6,7,9' : '1,2,3,4,5,6,7,8,9')).split(',').map((s) => Number(s.trim())));
const wanted = (k: FigureKey) => only.has(FIGURES[k]);

for (const f of [ENTRY.server, ENTRY.agent]) {
  if (!existsSync(f)) {
    process.stderr.write(`error: ${f} is missing: run \`npm run build\` first\n`);
    process.exit(2);
  }
}

const startedAt = new Date();
const t0 = performance.now();
const dir = workDir();
const profileDir = args.profile || args['profile-dir'] ? resolve(args['profile-dir'] ?? join(ROOT, 'bench/profiles')) : undefined;
const ctx: BenchContext = {
  dir,
  quick: args.quick,
  profileDir,
  fleets: args.fleets ? new Set(args.fleets.split(',').map((f) => f.trim())) : undefined,
  progress: (m) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(3)} s] ${m}\n`),
};
const figures: Partial<Record<FigureKey, FigureResult>> = {};

try {
  ctx.progress(`drover bench (${args.quick ? 'quick' : 'full'}) in ${dir}${profileDir ? `; CPU profiles in ${profileDir}` : ''}`);
  if (wanted('stepOverhead') || wanted('crossAgentHop') || wanted('throughput') || wanted('agentFootprint') || wanted('logs')) {
    const cl = await startStepsCluster(ctx);
    try {
      // The idle agent is measured in the background: it does nothing while the others work.
      const footprint = wanted('agentFootprint') ? await startFootprint(ctx, cl.server, cl.client) : undefined;
      if (wanted('stepOverhead') || wanted('crossAgentHop')) {
        const { overhead, hop } = await stepFigures(ctx, cl);
        if (wanted('stepOverhead')) figures.stepOverhead = overhead;
        if (wanted('crossAgentHop')) figures.crossAgentHop = hop;
      }
      if (wanted('throughput')) figures.throughput = await throughputFigure(ctx, cl);
      if (wanted('logs')) figures.logs = await logsFigure(ctx, cl);
      if (footprint) figures.agentFootprint = await footprint.measure();
    } finally {
      await cl.stop();
    }
  }
  if (wanted('fanOut') || wanted('idleFleet')) {
    const { fanOut, idle } = await fleetFigures(ctx);
    if (wanted('fanOut')) figures.fanOut = fanOut;
    if (wanted('idleFleet')) figures.idleFleet = idle;
  }
  if (wanted('signing')) {
    const fan = figures.fanOut?.rows.find((r) => r.id === 'fanOut.nats.10000.completeMs')?.value;
    figures.signing = await signingFigure(ctx, fan);
  }
  if (wanted('cliStartup')) figures.cliStartup = await cliFigure(ctx, resolve(args.cli ?? defaultCli(ROOT)));
} catch (err) {
  process.stderr.write(`\nbench failed: ${(err as Error).stack ?? err}\nprocess logs are in ${dir}\n`);
  killAll();
  process.exit(1);
}

const ordered = (Object.keys(FIGURES) as FigureKey[]).filter((k) => figures[k]);
const rows = ordered.flatMap((k) => figures[k]!.rows);
const results: Results = {
  version: 1,
  startedAt: startedAt.toISOString(),
  durationSeconds: Math.round((performance.now() - t0) / 100) / 10,
  mode: args.quick ? 'quick' : 'full',
  command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
  commit: gitCommit(),
  machine: machine(),
  figures: Object.fromEntries(ordered.map((k) => [k, figures[k]!])),
  targets: rows
    .filter((r) => r.target)
    .map((r) => ({ id: r.id, what: r.what, value: r.value, unit: r.unit, target: r.target!.text, pass: r.pass! })),
};
writeResults(resolve(args.out), results);
if (!args['keep-dir']) rmSync(dir, { recursive: true, force: true });

const m = results.machine;
process.stdout.write(`\ndrover bench (${results.mode}), ${m.cores} cores (${m.cpuModel}), Node ${m.node}, ${results.durationSeconds} s\n`);
process.stdout.write(`${table(rows)}\n`);
const passed = results.targets.filter((t) => t.pass).length;
process.stdout.write(`targets: ${passed} of ${results.targets.length} met; results in ${resolve(args.out)}${profileDir ? `; CPU profiles in ${profileDir}` : ''}\n`);
