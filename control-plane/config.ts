/**
 * Server options: defaults < config file < environment < flags. One function
 * validates and fills them, so the rest of the code sees a complete config.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { isIP } from 'node:net';
import { parseDuration } from '../common/duration.js';
import { ConfigError } from '../common/errors.js';
import { resolveNatsOptions, type NatsOptionInput, type NatsOptions } from '../common/nats-options.js';
import { FLEET_SAMPLE_INTERVAL_MS } from './metrics/fleet-sampler.js';
import { DEFAULT_IDEMPOTENCY_RETENTION_MS } from './launch-keys.js';

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
  /**
   * Plaintext gRPC, agents trusted by the name they give: for debugging on
   * one machine only (refused on any address but loopback). API tokens are
   * still checked.
   */
  insecure: boolean;
  /** Extra host names and addresses the server certificate names (how agents and clients reach it). */
  advertise: string[];
  /** Lifetime of agent client certificates; agents renew at two thirds of it. */
  agentCertTtlMs: number;
  /** Enrollments wait for `drover agent approve NAME`. */
  enrollApprove: boolean;
  /** A connected agent silent this long is marked disconnected (0: 3 heartbeat intervals). */
  disconnectAfterMs: number;
  /** A disconnected agent silent this long is lost: its steps follow onAgentLost. */
  lostAfterMs: number;
  /** A step still running this long past its timeout is failed by the control plane. */
  stepDeadlineSlackMs: number;
  /** How often a fleet sample is stored for `drover stats` (FLEET_SAMPLE_INTERVAL_MS). */
  fleetSampleIntervalMs: number;
  /** When set, NATS agents are served too (--nats and the --nats-* options; docs/nats.md). */
  nats?: NatsOptions;
  /** host:port of the HTTP port (dashboard, /metrics, /healthz, the /ws feed); '' = off. */
  http: string;
  /** Plain HTTP instead of HTTPS with the server certificate: loopback only. */
  httpPlain: boolean;
  /** How long a launch's idempotency key is remembered (--idempotency-retention, default 24h). */
  idempotencyRetentionMs: number;
  /** Where the state lives: `lowdb` (the data dir, the default) or `jetstream` (a stream and an object store on --nats; docs/scale-out.md). */
  store: 'lowdb' | 'jetstream';
  /** `--store jetstream`: replicas of the state stream and object store (3; 1 for a single nats-server). */
  storeReplicas: number;
  /** `--store jetstream`: the leader lease's length (--leader-lease, default 3s): a dead leader is replaced about this long after its last renewal. */
  leaseMs: number;
}

export const DEFAULTS: ServerConfig = {
  listen: '127.0.0.1:7400',
  dataDir: '.drover/server',
  logLevel: 'info',
  heartbeatIntervalMs: 5000,
  maxRuns: 1000,
  insecure: false,
  advertise: [],
  agentCertTtlMs: 30 * 86_400_000,
  enrollApprove: false,
  disconnectAfterMs: 0,
  lostAfterMs: 60_000,
  stepDeadlineSlackMs: 60_000,
  http: '',
  httpPlain: false,
  fleetSampleIntervalMs: FLEET_SAMPLE_INTERVAL_MS,
  idempotencyRetentionMs: DEFAULT_IDEMPOTENCY_RETENTION_MS,
  store: 'lowdb',
  storeReplicas: 3,
  leaseMs: 3000,
};

const ENV: Record<string, keyof ServerConfig> = {
  DROVER_LISTEN: 'listen',
  DROVER_DATA_DIR: 'dataDir',
  DROVER_LOG_LEVEL: 'logLevel',
  DROVER_ADVERTISE: 'advertise',
  DROVER_HTTP: 'http',
  DROVER_STORE: 'store',
};

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
    insecure: merged.insecure === true || merged.insecure === 'true',
    advertise: (Array.isArray(merged.advertise) ? merged.advertise.map(String) : String(merged.advertise ?? '').split(','))
      .map((h) => h.trim())
      .filter(Boolean),
    agentCertTtlMs: merged.agentCertTtl !== undefined ? (parseDuration(String(merged.agentCertTtl)) ?? NaN) : Number(merged.agentCertTtlMs),
    enrollApprove: merged.enrollApprove === true || merged.enrollApprove === 'true',
    disconnectAfterMs: Number(merged.disconnectAfterMs) || 3 * Number(merged.heartbeatIntervalMs),
    lostAfterMs: Number(merged.lostAfterMs),
    stepDeadlineSlackMs: Number(merged.stepDeadlineSlackMs),
    http: String(merged.http ?? ''),
    httpPlain: merged.httpPlain === true || merged.httpPlain === 'true',
    fleetSampleIntervalMs: Number(merged.fleetSampleIntervalMs),
    idempotencyRetentionMs: merged.idempotencyRetention !== undefined ? (parseDuration(String(merged.idempotencyRetention)) ?? NaN) : Number(merged.idempotencyRetentionMs),
    store: String(merged.store) as ServerConfig['store'],
    storeReplicas: Number(merged.storeReplicas),
    leaseMs: merged.leaderLease !== undefined ? (parseDuration(String(merged.leaderLease)) ?? NaN) : Number(merged.leaseMs),
  };
  if (!Number.isFinite(cfg.leaseMs) || cfg.leaseMs < 1000 || cfg.leaseMs > 60_000) {
    throw new ConfigError(`--leader-lease "${merged.leaderLease}" is not a duration from 1s to 60s (for example 3s): a standby takes over about this long after the leader's last renewal`);
  }
  if (cfg.store !== 'lowdb' && cfg.store !== 'jetstream') throw new ConfigError(`--store "${cfg.store}" is not lowdb (the data dir, the default) or jetstream (state on NATS JetStream, with --nats)`);
  if (!Number.isInteger(cfg.storeReplicas) || cfg.storeReplicas < 1 || cfg.storeReplicas > 5) {
    throw new ConfigError(`--store-replicas "${merged.storeReplicas}" must be 1 to 5 (JetStream's limit): 3 for a cluster of three or more nats-servers, 1 for a single one`);
  }
  if (!isHostPort(cfg.listen)) {
    throw new ConfigError(`--listen "${cfg.listen}" is not host:port (for example 127.0.0.1:7400 or 0.0.0.0:7400)`);
  }
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(cfg.logLevel)) {
    throw new ConfigError(`--log-level "${cfg.logLevel}" is not one of fatal, error, warn, info, debug, trace, silent`);
  }
  if (!Number.isFinite(cfg.idempotencyRetentionMs) || cfg.idempotencyRetentionMs < 1000) {
    throw new ConfigError(`--idempotency-retention "${merged.idempotencyRetention}" is not a duration of at least 1s (for example 24h or 7d)`);
  }
  if (!Number.isFinite(cfg.agentCertTtlMs) || cfg.agentCertTtlMs < 3000) {
    throw new ConfigError(`--agent-cert-ttl "${merged.agentCertTtl}" is not a duration of at least 3s (for example 30d or 12h)`);
  }
  const host = hostOf(cfg.listen);
  if (cfg.insecure && !isLoopback(host)) {
    throw new ConfigError(
      `--insecure is refused on ${cfg.listen}: without TLS anyone on the network could run commands on every agent. Listen on 127.0.0.1 for an insecure local test, or drop --insecure (TLS is set up by itself)`,
    );
  }
  if (cfg.http && !isHostPort(cfg.http)) {
    throw new ConfigError(`--http "${cfg.http}" is not host:port (for example 127.0.0.1:7401 or 0.0.0.0:7401)`);
  }
  if (cfg.httpPlain && !cfg.http) throw new ConfigError('--http-plain needs --http HOST:PORT (the HTTP port is off without it)');
  if (cfg.httpPlain && !isLoopback(hostOf(cfg.http))) {
    throw new ConfigError(
      `--http-plain is refused on ${cfg.http}: without TLS, tokens sent to the dashboard and /metrics could be read on the network. Use --http 127.0.0.1:PORT for plain HTTP, or drop --http-plain (HTTPS with the server certificate)`,
    );
  }
  if (cfg.lostAfterMs < cfg.disconnectAfterMs) {
    throw new ConfigError(`--lost-after-ms (${cfg.lostAfterMs}) must not be shorter than --disconnect-after-ms (${cfg.disconnectAfterMs})`);
  }
  for (const k of ['heartbeatIntervalMs', 'maxRuns', 'disconnectAfterMs', 'lostAfterMs', 'stepDeadlineSlackMs', 'fleetSampleIntervalMs'] as const) {
    if (!Number.isInteger(cfg[k]) || cfg[k] <= 0) throw new ConfigError(`${k} must be a positive integer, got ${merged[k]}`);
  }
  const nats = resolveNatsOptions(file as NatsOptionInput, flags, env);
  if (nats) cfg.nats = nats;
  if (cfg.store === 'jetstream' && !cfg.nats) throw new ConfigError('--store jetstream keeps the state on NATS JetStream: give the servers with --nats nats://HOST:PORT[,nats://HOST:PORT...] (docs/scale-out.md)');
  return cfg;
}

const isHostPort = (a: string) => /^[^:\s]+:\d{1,5}$/.test(a) || /^\[[0-9a-f:]+\]:\d{1,5}$/i.test(a);

/** The host part of host:port, without IPv6 brackets. */
export function hostOf(address: string): string {
  return address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
}

/** Whether a host is this machine only (where --insecure and --http-plain are allowed). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}
