import type { Command } from 'commander';
import { examples } from '../help.js';
import { DroverClient } from '../../client.js';
import { parseParamArgs } from '../../params.js';
import { collectParam, positiveInt } from '../options.js';
import { assertPortFree } from '../dev/port.js';
import { startSandbox, waitForSandbox, type Sandbox } from '../dev/sandbox.js';
import { describeExit, logTail, Supervisor } from '../dev/supervisor.js';
import { fleetTable } from '../render/fleet.js';
import { followRun } from '../render/follow.js';
import { cli } from '../invocation.js';
import { EXIT, formatError } from '../report.js';

interface DevOptions {
  port: number;
  dir: string;
  launch?: string;
  param?: string[];
}

/** `drover dev`: a control plane and three agents on this machine. */
export function register(program: Command): void {
  program
    .command('dev')
    .summary('run a local control plane and three agents')
    .description(
      'Start a control plane and three agents on this machine as child processes, wait until all are connected and print where everything is, the dashboard URL included (plain HTTP on 127.0.0.1, the port after --port). Agents: dir-1 (role=directory,site=hq), assets-1 (role=assets,site=hq), apps-1 (role=apps,cloud=aws,site=eu). Each process logs to <dir>/logs/<name>.log. With --launch, run a workflow and follow it. Ctrl-C stops everything.',
    )
    .option('--port <port>', 'control plane port on 127.0.0.1; the dashboard is on the next one', positiveInt, 7400)
    .option('--dir <dir>', 'where state and logs go', '.drover/dev')
    .option('--launch <file>', 'launch this workflow once the fleet is up, and follow it')
    .option('-p, --param <key=value>', 'parameter for --launch (repeatable)', collectParam)
    .addHelpText(
      'after',
      examples(
        'drover dev',
        'drover dev --port 7500 --dir /tmp/drover-dev',
        'drover dev --launch examples/onboarding.yaml -p username=alice',
      ),
    )
    .action(async (opts: DevOptions) => {
      await dev(opts);
    });
}

async function dev(opts: DevOptions): Promise<void> {
  const params = parseParamArgs(opts.param ?? []);
  await assertPortFree(opts.port, '127.0.0.1');
  await assertPortFree(opts.port + 1, '127.0.0.1', "the dashboard's, --port + 1");
  let ready = false;
  let sandbox: Sandbox | undefined;
  const supervisor = new Supervisor((child) => {
    if (!ready) return;
    process.stderr.write(`\ndrover dev: ${child.name} ${describeExit(child)}; last lines of ${child.logFile}:\n${logTail(child.logFile)}`);
    if (child === sandbox?.server) void shutdown(EXIT.failure);
  });
  let stopping = false;
  const shutdown = async (code: number): Promise<void> => {
    if (stopping) {
      supervisor.killAll();
      process.exit(code);
    }
    stopping = true;
    process.stderr.write('\nstopping the control plane and agents...\n');
    await supervisor.stopAll();
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown(EXIT.ok));
  process.on('SIGTERM', () => void shutdown(EXIT.ok));

  try {
    process.stdout.write(`starting a control plane and 3 agents in ${opts.dir} ...\n`);
    sandbox = await startSandbox(supervisor, opts.port, opts.dir);
    await waitForSandbox(sandbox);
  } catch (err) {
    await supervisor.stopAll();
    throw err;
  }
  ready = true;
  process.stdout.write(banner(sandbox));

  if (opts.launch) {
    const client = new DroverClient(sandbox.client);
    try {
      const handle = await client.runs.launch(opts.launch, params);
      process.stdout.write(`\nrun ${handle.id} started (${handle.run.workflow})\n`);
      await followRun(client, handle.id);
      process.stdout.write('\n' + fleetTable(await client.fleet.list()));
    } catch (err) {
      process.stderr.write(formatError(err));
    } finally {
      client.close();
    }
    process.stdout.write('\nthe fleet keeps running; Ctrl-C stops it\n');
  }
  await new Promise<never>(() => setInterval(() => {}, 1 << 30));
}

function banner(s: Sandbox): string {
  const logs = [s.server, ...s.agents].map((c) => `  ${c.name.padEnd(9)} ${c.logFile}\n`).join('');
  return (
    `\ndrover dev is up\n\n` +
    `control plane  ${s.address} (TLS)\n` +
    `dashboard:     ${s.dashboard}\n` +
    `data dir       ${s.dir}\n` +
    `agents         ${s.agents.map((c) => c.name).join(', ')} (each enrolled with a certificate of its own)\n` +
    `admin token    ${s.tokenFile}\n` +
    `CA             ${s.caFile}\n\n` +
    `logs:\n${logs}\n` +
    `in another terminal (in this directory the CLI finds the token and CA by itself):\n` +
    `  export DROVER_ADDR=${s.address} DROVER_CA=${s.caFile} DROVER_TOKEN=$(cat ${s.tokenFile})\n` +
    `  ${cli()} fleet\n` +
    `  ${cli()} run examples/onboarding.yaml -p username=alice --follow\n` +
    `  ${cli()} runs\n\n` +
    `Ctrl-C stops everything\n`
  );
}
