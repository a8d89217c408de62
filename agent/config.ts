/**
 * Agent options: defaults < config file < environment < flags, validated and
 * filled by one function.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';

export interface AgentConfig {
  /** Control plane address host:port. */
  server: string;
  /** Unique name in the fleet; defaults to the hostname. */
  name: string;
  labels: Record<string, string>;
  /** Where the agent keeps its state and step working directories. */
  stateDir: string;
  logLevel: string;
  /** Time between SIGTERM and SIGKILL for a cancelled or timed-out step. */
  graceMs: number;
  /** Enrollment token presented in Hello; empty when the control plane needs none. */
  token: string;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly code = 'BAD_CONFIG';
}

interface Flags {
  server?: string;
  name?: string;
  label?: string[];
  stateDir?: string;
  logLevel?: string;
  graceMs?: number;
  token?: string;
  config?: string;
}

const LABEL = /^([A-Za-z0-9][A-Za-z0-9._/-]{0,62})=([A-Za-z0-9._-]{0,63})$/;

export function parseLabels(items: string[], source: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const m = LABEL.exec(item);
    if (!m) throw new ConfigError(`${source} "${item}" is not key=value (letters, digits, ".", "-", "_"; for example role=web)`);
    out[m[1]] = m[2];
  }
  return out;
}

export function resolveConfig(flags: Flags, env = process.env): AgentConfig {
  let file: Partial<AgentConfig> & { labels?: Record<string, string> } = {};
  if (flags.config) {
    try {
      file = parseYaml(readFileSync(flags.config, 'utf8')) ?? {};
    } catch (err) {
      throw new ConfigError(`cannot read config file ${flags.config}: ${(err as Error).message}`);
    }
  }
  const server = flags.server ?? env.DROVER_SERVER ?? file.server ?? '127.0.0.1:7400';
  const name = flags.name ?? env.DROVER_AGENT_NAME ?? file.name ?? hostname();
  const labels = {
    ...parseLabels(Object.entries(file.labels ?? {}).map(([k, v]) => `${k}=${v}`), 'label in config file'),
    ...parseLabels((env.DROVER_LABELS ?? '').split(',').filter(Boolean), 'DROVER_LABELS item'),
    ...parseLabels(flags.label ?? [], '--label'),
  };
  const stateDir = flags.stateDir ?? env.DROVER_STATE_DIR ?? file.stateDir ?? join('.drover', 'agent', name);
  const logLevel = flags.logLevel ?? env.DROVER_LOG_LEVEL ?? file.logLevel ?? 'info';
  const graceMs = Number(flags.graceMs ?? file.graceMs ?? 5000);
  const token = flags.token ?? env.DROVER_TOKEN ?? file.token ?? '';
  if (!/^[^\s/]+:\d{1,5}$/.test(server)) {
    throw new ConfigError(`--server "${server}" is not host:port (for example 127.0.0.1:7400)`);
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name)) {
    throw new ConfigError(`--name "${name}" is not valid: use letters, digits, ".", "-", "_" (at most 63), starting with a letter or digit`);
  }
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    throw new ConfigError(`--log-level "${logLevel}" is not one of fatal, error, warn, info, debug, trace, silent`);
  }
  if (!Number.isInteger(graceMs) || graceMs < 0) throw new ConfigError(`--grace-ms must be a whole number of milliseconds, got ${graceMs}`);
  return { server, name, labels, stateDir, logLevel, graceMs, token };
}
