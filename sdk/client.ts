import { readFileSync } from 'node:fs';
import { checkAddress } from './address.js';
import { AccessApi } from './access.js';
import { AuditApi } from './audit.js';
import { SchedulesApi } from './schedules.js';
import { SecretsApi } from './secrets.js';
import { StatsApi } from './stats.js';
import { Connection, DEFAULT_ADDRESS, DEFAULT_CONNECT_TIMEOUT_MS } from './connection.js';
import { FileNotFoundError, InvalidInputError } from './errors.js';
import { DevicesApi } from './devices.js';
import { FleetApi } from './fleet.js';
import { RunsApi, type LogsOptions } from './runs.js';
import type { LogLine } from './types.js';
import { WorkflowsApi } from './workflows.js';

/** Options for `new DroverClient()`. */
export interface ClientOptions {
  /** host:port of the control plane. Default: DROVER_ADDR, else 127.0.0.1:7400. */
  address?: string;
  /** How long the first call waits for a connection before SERVER_UNREACHABLE. Default 3000. */
  connectTimeoutMs?: number;
  /** API token (`drover token create`). Default: DROVER_TOKEN. */
  token?: string;
  /**
   * The CA that signed the control plane's certificate: a PEM file's path or
   * the PEM itself (a drover server's is `<data-dir>/ca.pem`). Default:
   * DROVER_CA, else the system's trusted roots.
   */
  ca?: string;
  /** Plaintext gRPC, for a control plane started with `--insecure` (loopback only). Default false. */
  insecure?: boolean;
}

/** Compiled client configuration: every option filled. */
export interface ResolvedClientOptions {
  address: string;
  connectTimeoutMs: number;
  token: string;
  /** PEM text of the CA to trust; undefined: the system's roots. */
  caPem?: string;
  insecure: boolean;
}

/** Reads a CA given as a path or as PEM text. */
function readCa(ca: string, source: string): string {
  if (ca.includes('-----BEGIN CERTIFICATE-----')) return ca;
  try {
    return readFileSync(ca, 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    const Err = missing ? FileNotFoundError : InvalidInputError;
    throw new Err(`cannot read the CA certificate ${ca} (from ${source}): ${(err as Error).message}`, {
      hint: 'a drover server writes its CA to <data dir>/ca.pem; copy it here, or point --ca / DROVER_CA at it',
    });
  }
}

/** Fills defaults: option < environment (DROVER_ADDR, DROVER_TOKEN, DROVER_CA) < built-in default, in that order of preference. */
export function resolveClientOptions(options: ClientOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedClientOptions {
  const ca = options.ca || env.DROVER_CA;
  return {
    address: checkAddress(options.address || env.DROVER_ADDR || DEFAULT_ADDRESS),
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    token: (options.token || env.DROVER_TOKEN || '').trim(),
    caPem: ca ? readCa(ca, options.ca ? 'the ca option' : 'DROVER_CA') : undefined,
    insecure: options.insecure ?? false,
  };
}

/**
 * A client of one drover control plane.
 *
 * ```ts
 * const drover = new DroverClient();
 * const run = await drover.runs.launch('onboarding.yaml', { username: 'alice' });
 * console.log((await run.wait()).status);
 * drover.close();
 * ```
 */
export class DroverClient {
  /** The address this client talks to. */
  readonly address: string;
  /** Agents: list, get, watch. */
  readonly fleet: FleetApi;
  /** Runs: launch, get, list, cancel. */
  readonly runs: RunsApi;
  /** Workflows: validate, plan, and the registry (apply, list, get). */
  readonly workflows: WorkflowsApi;
  /** The device inventory (network devices driven by ssh steps): add, list, get, remove. */
  readonly devices: DevicesApi;
  /** Identity and access: API and enrollment tokens, agent certificates (admin role). */
  readonly access: AccessApi;
  /** Named secrets, stored encrypted: set and remove (admin), list names (operator). Values are never returned. */
  readonly secrets: SecretsApi;
  /** The audit log: read it, verify its hash chain (admin role). */
  readonly audit: AuditApi;
  /** The four orchestration metrics over a window (docs/metrics.md), viewer role. */
  readonly stats: StatsApi;
  /** Cron schedules of registered workflows: list (viewer), pause and resume (operator). */
  readonly schedules: SchedulesApi;
  private readonly conn: Connection;

  constructor(options: ClientOptions = {}) {
    const resolved = resolveClientOptions(options);
    this.address = resolved.address;
    this.conn = new Connection(resolved.address, resolved.connectTimeoutMs, resolved);
    this.fleet = new FleetApi(this.conn);
    this.runs = new RunsApi(this.conn);
    this.workflows = new WorkflowsApi(this.conn);
    this.devices = new DevicesApi(this.conn);
    this.access = new AccessApi(this.conn);
    this.secrets = new SecretsApi(this.conn);
    this.audit = new AuditApi(this.conn);
    this.stats = new StatsApi(this.conn);
    this.schedules = new SchedulesApi(this.conn);
  }

  /** Log lines of a run, or of one step when `stepId` is given. */
  logs(runId: string, stepId?: string, options: LogsOptions = {}): AsyncIterable<LogLine> {
    return this.runs.logs(runId, stepId ?? '', options);
  }

  /** Closes the connection. */
  close(): void {
    this.conn.close();
  }
}
