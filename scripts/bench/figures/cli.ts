/**
 * Figure 9: how fast the `drover` CLI starts. `drover --version`, `drover
 * --help` and `drover fleet` (against a real control plane with two real
 * agents, TLS and a token as a user has them) are each spawned N times,
 * interleaved with `node -e 0` so that whatever else the machine does falls
 * on all of them alike; p50 of the wall time from spawn to exit. The
 * target: within 3× of `node -e 0`. The CLI keeps a code cache of the gRPC
 * client (sdk/cli/load-client.ts) in the bench's own XDG_CACHE_HOME, which
 * the untimed first round writes; `fleet, no code cache` times the first
 * command on a machine (an empty cache directory each time), for reference.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext, FigureResult } from '../context.js';
import { startAgent, startServer, waitFor } from '../procs.js';
import { clientOptionsFor } from '../../lib/credentials.js';
import { DroverClient } from '../../../sdk/index.js';
import { p50, row } from '../report.js';

/** Wall milliseconds of one run; throws when it fails or its output lacks `expect`. */
function timed(cmd: string, args: string[], expect: RegExp | undefined, cacheHome: string): number {
  const t = performance.now();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', XDG_CACHE_HOME: cacheHome } });
  const ms = performance.now() - t;
  if (r.status !== 0 || (expect && !expect.test(r.stdout))) {
    throw new Error(`\`${[cmd, ...args].join(' ')}\` failed (exit ${r.status}):\n${r.stdout}${r.stderr}`);
  }
  return ms;
}

/** `cli`: the CLI entry to time (default dist/sdk/cli/main.js). */
export async function cliFigure(ctx: BenchContext, cli: string): Promise<FigureResult> {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build\` first`);
  const runs = ctx.quick ? 9 : 25;
  ctx.progress(`figure 9: CLI start-up (${cli}), ${runs} runs of each against node -e 0`);
  const server = await startServer({ dir: ctx.dir, name: 'cli-server' });
  const agents = ['cli-a', 'cli-b'].map((name) => startAgent({ dir: ctx.dir, name, server: server.address, token: server.enrollToken, labels: { role: 'bench' } }));
  try {
    const client = new DroverClient(clientOptionsFor(server.address, server.creds));
    try {
      await waitFor(async () => (await client.fleet.list()).filter((a) => a.state === 'connected').length === agents.length, 30_000, () => 'the two agents to connect');
    } finally {
      client.close();
    }
    const dial = ['--server', server.address, '--token', server.creds.token, '--ca', server.creds.caFile];
    const commands = [
      { key: 'node', what: 'node -e 0', args: ['-e', '0'], expect: undefined },
      { key: 'version', what: 'drover --version', args: [cli, '--version'], expect: /^\d+\.\d+\.\d+/ },
      { key: 'help', what: 'drover --help', args: [cli, '--help'], expect: /Commands:/ },
      { key: 'fleet', what: 'drover fleet (2 agents, TLS, token)', args: [cli, 'fleet', ...dial], expect: /cli-a[\s\S]*cli-b|cli-b[\s\S]*cli-a/ },
      { key: 'fleetCold', what: 'drover fleet, no code cache', args: [cli, 'fleet', ...dial], expect: /cli-a[\s\S]*cli-b|cli-b[\s\S]*cli-a/ },
    ] as const;
    const samples: Record<string, number[]> = Object.fromEntries(commands.map((c) => [c.key, []]));
    const cache = join(ctx.dir, 'cli-cache');
    const cacheFor = (key: string, i: number) => (key === 'fleetCold' ? join(ctx.dir, `cli-cache-cold-${i}`) : cache);
    // One untimed round: file cache, the server's first TLS session, the CLI's code cache.
    for (const c of commands) timed(process.execPath, [...c.args], c.expect, cacheFor(c.key, -1));
    for (let i = 0; i < runs; i++) for (const c of commands) samples[c.key].push(timed(process.execPath, [...c.args], c.expect, cacheFor(c.key, i)));

    const node = p50(samples.node);
    const rows = commands
      .filter((c) => c.key !== 'node')
      .map((c) =>
        row({
          id: `cli.${c.key}Ms`,
          figure: '9 CLI start-up',
          what: `${c.what}, spawn to exit (p50 of ${runs})`,
          value: p50(samples[c.key]),
          unit: 'ms',
          baseline: { what: 'node -e 0', value: node, unit: 'ms' },
          ...(c.key === 'fleetCold' ? {} : { target: { op: '<=' as const, limit: 3 * node, text: '≤ 3× node -e 0' } }),
        }),
      );
    return { rows, details: { cli, runs, commands: commands.map((c) => ({ key: c.key, command: c.what })), samplesMs: samples } };
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    await server.stop();
  }
}

/** The CLI entry figure 9 times unless told otherwise. */
export function defaultCli(root: string): string {
  return join(root, 'dist/sdk/cli/main.js');
}
