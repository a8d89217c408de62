#!/usr/bin/env node
/** `drover agent` / `drover-agent`: dials the control plane and runs steps. Builds the link and wires the parts. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { ConfigError, resolveConfig, type AgentConfig } from './config.js';
import { Connection } from './connection.js';
import { GrpcLink } from './link/grpc-link.js';
import { createLogger } from './log.js';
import { Outbox } from './outbox.js';
import { Runtime } from './runtime.js';
import { collectFacts, Usage } from './telemetry.js';
import { VERSION } from './version.js';

async function runAgent(cfg: AgentConfig) {
  const log = createLogger(cfg.logLevel, cfg.name);
  mkdirSync(cfg.stateDir, { recursive: true, mode: 0o700 });
  const outbox = new Outbox();
  const runtime = new Runtime({
    agentName: cfg.name,
    labels: cfg.labels,
    workDir: join(cfg.stateDir, 'work'),
    graceMs: cfg.graceMs,
    emit: (body) => outbox.push(body),
    log: log.child({ component: 'runtime' }),
  });
  const facts = await collectFacts(VERSION);
  const conn = new Connection({
    name: cfg.name,
    labels: cfg.labels,
    token: cfg.token,
    facts,
    link: new GrpcLink(cfg.server),
    outbox,
    runtime,
    usage: new Usage(cfg.stateDir),
    log: log.child({ component: 'link' }),
    onReject: (code, message) => {
      process.stderr.write(`error: the control plane refused this agent (${code}): ${message}\n`);
      process.exit(1);
    },
  });
  log.info({ server: cfg.server, labels: cfg.labels, stateDir: cfg.stateDir, version: VERSION }, 'agent starting');
  conn.start();
  const stop = (signal: string) => {
    log.info({ signal, running: runtime.running }, 'agent stopping');
    conn.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

const program = new Command('drover agent')
  .description('Run a Drover agent: dial out to the control plane, report this host, and run the steps it is given.')
  .option('--server <host:port>', 'control plane address (env DROVER_SERVER) (default: 127.0.0.1:7400)')
  .option('--name <name>', 'unique agent name in the fleet (env DROVER_AGENT_NAME) (default: the hostname)')
  .option('--label <key=value>', 'a label for target selection; repeat for more (env DROVER_LABELS=k=v,k2=v2)', collect)
  .option('--state-dir <dir>', 'where the agent keeps its state and step work dirs (env DROVER_STATE_DIR) (default: .drover/agent/<name>)')
  .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (env DROVER_LOG_LEVEL) (default: info)')
  .option('--grace-ms <ms>', 'time between SIGTERM and SIGKILL when a step is cancelled or times out (default: 5000)', (v) => Number(v))
  .option('--token <token>', 'enrollment token, when the control plane requires one (env DROVER_TOKEN)')
  .option('--config <file>', 'YAML file with server, name, labels (a mapping), stateDir, logLevel, graceMs, token; env and flags win')
  .version(VERSION, '--version', 'print the version and build commit')
  .addHelpText(
    'after',
    '\nExamples:\n  drover agent --server 10.0.0.5:7400 --name web-1 --label role=web --label site=ams\n  DROVER_SERVER=cp.example:7400 DROVER_LABELS=role=db drover agent',
  )
  .action(async (opts: Record<string, unknown>) => {
    try {
      await runAgent(resolveConfig(opts));
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`error: ${err.message}\n`);
        process.exit(2);
      }
      throw err;
    }
  });

// No top-level await: the single-binary build bundles this file as CommonJS.
void program.parseAsync(process.argv);
