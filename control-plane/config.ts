/**
 * Server options: defaults < config file < environment < flags. One function
 * validates and fills them, so the rest of the code sees a complete config.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { NatsOptionsError, resolveNatsOptions, type NatsOptionInput, type NatsOptions } from '../proto/nats-options.js';

export interface ServerConfig {
  /** host:port for gRPC (agents and API). */
  listen: string;
  /** Where state.json and logs/ live. */
  dataDir: string;
  logLevel: string;
  /** How often agents send a heartbeat. */
  heartbeatIntervalMs: number;
  /** Finished runs kept with their logs. */
  maxRuns: number;
  /** When set, agents must present this token in Hello. */
  enrollToken: string;
  /** A connected agent silent this long is marked disconnected (0: 3 heartbeat intervals). */
  disconnectAfterMs: number;
  /** A disconnected agent silent this long is lost: its steps follow onAgentLost. */
  lostAfterMs: number;
  /** A step still running this long past its timeout is failed by the control plane. */
  stepDeadlineSlackMs: number;
  /** When set, NATS agents are served too (--nats and the --nats-* options; docs/nats.md). */
  nats?: NatsOptions;
}

export const DEFAULTS: ServerConfig = {
  listen: '127.0.0.1:7400',
  dataDir: '.drover/server',
  logLevel: 'info',
  heartbeatIntervalMs: 5000,
  maxRuns: 1000,
  enrollToken: '',
  disconnectAfterMs: 0,
  lostAfterMs: 60_000,
  stepDeadlineSlackMs: 60_000,
};

const ENV: Record<string, keyof ServerConfig> = {
  DROVER_LISTEN: 'listen',
  DROVER_DATA_DIR: 'dataDir',
  DROVER_LOG_LEVEL: 'logLevel',
  DROVER_ENROLL_TOKEN: 'enrollToken',
};

export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly code = 'BAD_CONFIG';
}

export function resolveConfig(flags: Partial<Record<keyof ServerConfig, unknown>> & NatsOptionInput & { config?: string }, env = process.env): ServerConfig {
  let file: Partial<ServerConfig> = {};
  if (flags.config) {
    try {
      file = (parseYaml(readFileSync(flags.config, 'utf8')) ?? {}) as Partial<ServerConfig>;
    } catch (err) {
      throw new ConfigError(`cannot read config file ${flags.config}: ${(err as Error).message}`);
    }
  }
  const fromEnv: Partial<Record<keyof ServerConfig, string>> = {};
  for (const [k, field] of Object.entries(ENV)) if (env[k]) fromEnv[field] = env[k];
  const defined = (o: object) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  const merged = { ...DEFAULTS, ...defined(file), ...defined(fromEnv), ...defined(flags) } as Record<string, unknown>;
  const cfg: ServerConfig = {
    listen: String(merged.listen),
    dataDir: String(merged.dataDir),
    logLevel: String(merged.logLevel),
    heartbeatIntervalMs: Number(merged.heartbeatIntervalMs),
    maxRuns: Number(merged.maxRuns),
    enrollToken: String(merged.enrollToken ?? ''),
    disconnectAfterMs: Number(merged.disconnectAfterMs) || 3 * Number(merged.heartbeatIntervalMs),
    lostAfterMs: Number(merged.lostAfterMs),
    stepDeadlineSlackMs: Number(merged.stepDeadlineSlackMs),
  };
  if (!/^[^:\s]+:\d{1,5}$/.test(cfg.listen) && !/^\[[0-9a-f:]+\]:\d{1,5}$/i.test(cfg.listen)) {
    throw new ConfigError(`--listen "${cfg.listen}" is not host:port (for example 127.0.0.1:7400 or 0.0.0.0:7400)`);
  }
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(cfg.logLevel)) {
    throw new ConfigError(`--log-level "${cfg.logLevel}" is not one of fatal, error, warn, info, debug, trace, silent`);
  }
  if (cfg.lostAfterMs < cfg.disconnectAfterMs) {
    throw new ConfigError(`--lost-after-ms (${cfg.lostAfterMs}) must not be shorter than --disconnect-after-ms (${cfg.disconnectAfterMs})`);
  }
  for (const k of ['heartbeatIntervalMs', 'maxRuns', 'disconnectAfterMs', 'lostAfterMs', 'stepDeadlineSlackMs'] as const) {
    if (!Number.isInteger(cfg[k]) || cfg[k] <= 0) throw new ConfigError(`${k} must be a positive integer, got ${merged[k]}`);
  }
  try {
    const nats = resolveNatsOptions(file as NatsOptionInput, flags, env);
    if (nats) cfg.nats = nats;
  } catch (err) {
    if (err instanceof NatsOptionsError) throw new ConfigError(err.message);
    throw err;
  }
  return cfg;
}
