#!/usr/bin/env node
/** `drover server`: the control plane process. Builds the transports and wires the parts. */
import * as grpc from '@grpc/grpc-js';
import { Command } from 'commander';
import { droverV1 } from '../proto/index.js';
import { AgentSessions } from './agent-sessions.js';
import { fleetService } from './api/fleet-api.js';
import { runService } from './api/run-api.js';
import { ConfigError, DEFAULTS, resolveConfig, type ServerConfig } from './config.js';
import { Fleet } from './fleet.js';
import { createLogger } from './log.js';
import { Runs } from './runs.js';
import { LowdbStore } from './store/lowdb-store.js';
import { StoreError } from './store/store.js';
import { grpcAgentService } from './transport/grpc-agent-link.js';

async function serve(cfg: ServerConfig) {
  const log = createLogger(cfg.logLevel);
  const store = new LowdbStore({ dataDir: cfg.dataDir, maxRuns: cfg.maxRuns });
  await store.open();
  const now = () => Date.now();
  const fleet = new Fleet(store, now);
  const runs = new Runs(store, fleet, log.child({ component: 'runs' }), now);
  const sessions = new AgentSessions(fleet, runs, store, log.child({ component: 'agents' }), {
    heartbeatIntervalMs: cfg.heartbeatIntervalMs,
    enrollToken: cfg.enrollToken,
  });

  const v1 = droverV1();
  const server = new grpc.Server({
    'grpc.keepalive_time_ms': 15_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
  });
  server.addService(v1.AgentService.service, grpcAgentService(sessions));
  server.addService(v1.FleetService.service, fleetService(fleet));
  server.addService(v1.RunService.service, runService(runs, store));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(cfg.listen, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  ).catch((err: Error) => {
    throw new ConfigError(
      `cannot listen on ${cfg.listen}: ${err.message.replace(/^No address added out of total \d+ resolved/, 'address unavailable')}` +
        '; is another drover server running there? Choose another address with --listen HOST:PORT',
    );
  });
  const address = cfg.listen.replace(/:\d+$/, `:${port}`);
  log.info({ address, dataDir: cfg.dataDir, agents: fleet.list().length, runs: store.listRuns().length }, 'control plane listening');
  // One plain line on stdout so scripts and `drover dev` can find the address.
  process.stdout.write(`drover server listening on ${address}\n`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    server.tryShutdown(() => undefined);
    setTimeout(() => server.forceShutdown(), 2000).unref();
    void store.close().finally(() => process.exit(0));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

const program = new Command('drover server')
  .description('Run the Drover control plane: agents connect to it, the CLI and SDK talk to it.')
  .option('--listen <host:port>', `gRPC address for agents and API clients (env DROVER_LISTEN) (default: ${DEFAULTS.listen})`)
  .option('--data-dir <dir>', `where state and run logs are kept (env DROVER_DATA_DIR) (default: ${DEFAULTS.dataDir})`)
  .option('--log-level <level>', `fatal|error|warn|info|debug|trace|silent (env DROVER_LOG_LEVEL) (default: ${DEFAULTS.logLevel})`)
  .option('--heartbeat-interval-ms <ms>', `how often agents report (default: ${DEFAULTS.heartbeatIntervalMs})`, (v) => Number(v))
  .option('--max-runs <n>', `finished runs kept with their logs (default: ${DEFAULTS.maxRuns})`, (v) => Number(v))
  .option('--enroll-token <token>', 'require agents to present this token (env DROVER_ENROLL_TOKEN); empty: no token needed')
  .option('--config <file>', 'YAML file with any of the options above (camelCase keys); flags and env win')
  .addHelpText('after', '\nExamples:\n  drover server --listen 127.0.0.1:7400 --data-dir /var/lib/drover\n  DROVER_LOG_LEVEL=debug drover server')
  .action(async (opts: Record<string, unknown>) => {
    try {
      await serve(resolveConfig(opts));
    } catch (err) {
      if (err instanceof ConfigError || err instanceof StoreError) {
        process.stderr.write(`error: ${err.message}\n`);
        process.exit(1);
      }
      throw err;
    }
  });

await program.parseAsync(process.argv);
