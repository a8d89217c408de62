/**
 * Agent options: defaults < config file < environment < flags, validated and
 * filled by one function.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../common/errors.js';
import { AGENT_NAME, LABEL_KEY, LABEL_VALUE } from '../common/names.js';
import { resolveNatsOptions, type NatsOptionInput, type NatsOptions } from '../common/nats-options.js';
import { EgressPolicy, EgressRuleError } from './executor/egress.js';
import { CredentialError, parseCredentialFlags } from './executor/ssh/credentials.js';

export interface AgentConfig {
  /** Control plane address host:port: the gRPC link, and where the agent enrolls (with `nats` too). */
  server: string;
  /** When set, the agent links over NATS instead of gRPC (docs/nats.md). */
  nats?: NatsOptions;
  /** Unique name in the fleet; defaults to the hostname. */
  name: string;
  labels: Record<string, string>;
  /** Where the agent keeps its state and step working directories. */
  stateDir: string;
  logLevel: string;
  /** Time between SIGTERM and SIGKILL for a cancelled or timed-out step. */
  graceMs: number;
  /** Enrollment token, used once to get this agent's certificate (docs/security.md); '' once enrolled. */
  token: string;
  /** Plaintext link to a control plane on --insecure (loopback only): no enrollment, nothing verified. */
  insecure: boolean;
  /** Directories file steps may write into; empty means <stateDir>/files. */
  fileRoots: string[];
  /** File steps may set setuid, setgid and sticky bits (--file-allow-special-modes); off, such a mode fails the step. */
  fileAllowSpecialModes: boolean;
  /** On SIGTERM/SIGINT, stop running steps before exiting (default: they keep running; the next start re-attaches). */
  stopStepsOnExit: boolean;
  /** http steps: --http-allow rules (CIDR, IP or host pattern); given any, a destination must match one. */
  httpAllow: string[];
  /** http steps: --http-deny rules; they win over httpAllow. */
  httpDeny: string[];
  /** http steps: httpAllow and httpDeny compiled, with the built-in denial of link-local and metadata addresses (agent/executor/egress.ts). */
  egress: EgressPolicy;
  /** Disk bound of the journal; past it new log output is dropped (step events never are). */
  journalMaxBytes: number;
  /** ssh steps: credential name -> key or password file (absolute paths). */
  credentials: Record<string, string>;
  /** ssh steps: where a credential not in `credentials` is looked up by name. */
  credentialsDir: string;
  /** ssh steps: the known_hosts file device host keys are checked against. */
  sshKnownHosts: string;
  /** ssh steps: add an unknown device's host key to sshKnownHosts instead of failing. */
  sshAcceptNewHostKeys: boolean;
  /** ssh steps: give up on a device that does not finish the SSH handshake in this time. */
  sshConnectTimeoutMs: number;
  /** ssh steps: close a device session unused for this long. */
  sshIdleMs: number;
}

/** Defaults of the ssh step options. */
export const SSH_DEFAULTS = {
  connectTimeoutMs: 15_000,
  /** Long enough for the next step of a run to reuse the session, short enough not to hold a device's few vty lines. */
  idleMs: 60_000,
};

interface Flags extends NatsOptionInput {
  server?: string;
  name?: string;
  label?: string[];
  stateDir?: string;
  logLevel?: string;
  graceMs?: number;
  token?: string;
  insecure?: boolean;
  fileRoot?: string[];
  fileAllowSpecialModes?: boolean;
  stopStepsOnExit?: boolean;
  httpAllow?: string[];
  httpDeny?: string[];
  journalMaxBytes?: number;
  credential?: string[];
  credentialsDir?: string;
  sshKnownHosts?: string;
  sshAcceptNewHostKeys?: boolean;
  sshConnectTimeoutMs?: number;
  sshIdleMs?: number;
  config?: string;
}

export function parseLabels(items: string[], source: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    const [key, value] = [item.slice(0, eq), item.slice(eq + 1)];
    if (eq < 0 || !LABEL_KEY.test(key) || !LABEL_VALUE.test(value)) {
      throw new ConfigError(`${source} "${item}" is not key=value (letters, digits, ".", "-", "_"; for example role=web)`);
    }
    out[key] = value;
  }
  return out;
}

/** A rule list from flags (always strings) or the config file (a string or a list of them). */
function ruleList(value: unknown, key: string): string[] {
  if (value === undefined || value === null) return [];
  const items = Array.isArray(value) ? value : [value];
  if (!items.every((v) => typeof v === 'string')) throw new ConfigError(`${key} in the config file must be a list of CIDRs, IPs or host patterns (for example [10.0.0.0/8, "*.example.com"])`);
  return items;
}

export function resolveConfig(flags: Flags, env = process.env): AgentConfig {
  let file: Partial<AgentConfig> & { labels?: Record<string, string>; credentials?: Record<string, string> } = {};
  if (flags.config) {
    try {
      file = parseYaml(readFileSync(flags.config, 'utf8')) ?? {};
    } catch (err) {
      throw new ConfigError(`cannot read config file ${flags.config}: ${(err as Error).message}`);
    }
  }
  const givenServer = flags.server ?? env.DROVER_SERVER ?? file.server;
  let nats = resolveNatsOptions(file as NatsOptionInput, flags, env);
  // The link is chosen where it is set with the highest precedence (flags < env < file);
  // both at the same level is a mistake worth stopping for.
  const levels: [unknown, unknown, string][] = [
    [flags.server, flags.nats, 'on the command line'],
    [env.DROVER_SERVER, env.DROVER_NATS, 'in the environment (DROVER_SERVER, DROVER_NATS)'],
    [file.server, (file as NatsOptionInput).nats, `in ${flags.config}`],
  ];
  // With --nats, --server is where the agent enrolls (over gRPC), not its link.
  const chosen = levels.find(([srv, nt]) => srv || nt);
  if (chosen && !chosen[1]) nats = undefined;
  const server = givenServer ?? (nats ? '' : '127.0.0.1:7400');
  const name = flags.name ?? env.DROVER_AGENT_NAME ?? file.name ?? hostname();
  const labels = {
    ...parseLabels(Object.entries(file.labels ?? {}).map(([k, v]) => `${k}=${v}`), 'label in config file'),
    ...parseLabels((env.DROVER_LABELS ?? '').split(',').filter(Boolean), 'DROVER_LABELS item'),
    ...parseLabels(flags.label ?? [], '--label'),
  };
  // Absolute: steps run in other directories and are handed paths inside it (their exit file, $DROVER_OUTPUT).
  const stateDir = resolve(flags.stateDir ?? env.DROVER_STATE_DIR ?? file.stateDir ?? join('.drover', 'agent', name));
  const logLevel = flags.logLevel ?? env.DROVER_LOG_LEVEL ?? file.logLevel ?? 'info';
  const graceMs = Number(flags.graceMs ?? file.graceMs ?? 5000);
  const token = (flags.token ?? env.DROVER_ENROLL_TOKEN ?? file.token ?? '').trim();
  const insecure = Boolean(flags.insecure ?? file.insecure ?? false);
  const fileRoots = flags.fileRoot ?? file.fileRoots ?? [];
  const fileAllowSpecialModes = Boolean(flags.fileAllowSpecialModes ?? file.fileAllowSpecialModes ?? false);
  const stopStepsOnExit = Boolean(flags.stopStepsOnExit ?? file.stopStepsOnExit ?? false);
  const httpAllow = ruleList(flags.httpAllow ?? file.httpAllow, 'httpAllow');
  const httpDeny = ruleList(flags.httpDeny ?? file.httpDeny, 'httpDeny');
  let egress: EgressPolicy;
  try {
    egress = new EgressPolicy({ allow: httpAllow, deny: httpDeny });
  } catch (err) {
    if (err instanceof EgressRuleError) throw new ConfigError(err.message);
    throw err;
  }
  const journalMaxBytes = Number(flags.journalMaxBytes ?? file.journalMaxBytes ?? 256 * 1024 * 1024);
  if (!Number.isInteger(journalMaxBytes) || journalMaxBytes < 1024 * 1024) {
    throw new ConfigError(`--journal-max-bytes must be a whole number of at least 1048576 (1 MiB), got ${flags.journalMaxBytes ?? file.journalMaxBytes}`);
  }
  if ((server || !nats) && !server.split(',').every((s) => /^[^\s/,]+:\d{1,5}$/.test(s))) {
    throw new ConfigError(`--server "${server}" is not host:port (for example 127.0.0.1:7400), or for a replicated control plane several, comma-separated (10.0.0.5:7400,10.0.0.6:7400)`);
  }
  if (!AGENT_NAME.test(name)) {
    throw new ConfigError(`--name "${name}" is not valid: use letters, digits, ".", "-", "_" (at most 63), starting with a letter or digit`);
  }
  if (nats && (name.endsWith('.') || name.includes('..'))) {
    throw new ConfigError(`--name "${name}" cannot be used with --nats: a NATS subject token cannot be empty, so no "." at the end and no ".."`);
  }
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    throw new ConfigError(`--log-level "${logLevel}" is not one of fatal, error, warn, info, debug, trace, silent`);
  }
  if (!Number.isInteger(graceMs) || graceMs < 0) throw new ConfigError(`--grace-ms must be a whole number of milliseconds, got ${graceMs}`);
  let credentials: Record<string, string>;
  try {
    credentials = {
      ...parseCredentialFlags(Object.entries(file.credentials ?? {}).map(([k, v]) => `${k}=${v}`)),
      ...parseCredentialFlags(flags.credential ?? []),
    };
  } catch (err) {
    if (err instanceof CredentialError) throw new ConfigError(err.message);
    throw err;
  }
  for (const [k, v] of Object.entries(credentials)) credentials[k] = resolve(v);
  const credentialsDir = resolve(flags.credentialsDir ?? file.credentialsDir ?? join(stateDir, 'credentials'));
  const sshKnownHosts = resolve(flags.sshKnownHosts ?? file.sshKnownHosts ?? join(stateDir, 'known_hosts'));
  const sshAcceptNewHostKeys = Boolean(flags.sshAcceptNewHostKeys ?? file.sshAcceptNewHostKeys ?? false);
  const sshConnectTimeoutMs = Number(flags.sshConnectTimeoutMs ?? file.sshConnectTimeoutMs ?? SSH_DEFAULTS.connectTimeoutMs);
  const sshIdleMs = Number(flags.sshIdleMs ?? file.sshIdleMs ?? SSH_DEFAULTS.idleMs);
  for (const [flag, v] of [['--ssh-connect-timeout-ms', sshConnectTimeoutMs], ['--ssh-idle-ms', sshIdleMs]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new ConfigError(`${flag} must be a whole number of milliseconds above 0, got ${v}`);
  }
  return {
    server,
    name,
    labels,
    stateDir,
    logLevel,
    graceMs,
    token,
    insecure,
    fileRoots,
    fileAllowSpecialModes,
    stopStepsOnExit,
    httpAllow,
    httpDeny,
    egress,
    journalMaxBytes,
    credentials,
    credentialsDir,
    sshKnownHosts,
    sshAcceptNewHostKeys,
    sshConnectTimeoutMs,
    sshIdleMs,
    ...(nats ? { nats } : {}),
  };
}
