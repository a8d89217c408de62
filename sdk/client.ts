import { Connection, DEFAULT_ADDRESS, DEFAULT_CONNECT_TIMEOUT_MS } from './connection.js';
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
}

/** Compiled client configuration: every option filled. */
export interface ResolvedClientOptions {
  address: string;
  connectTimeoutMs: number;
}

/** Fills defaults: option < DROVER_ADDR < built-in default, in that order of preference. */
export function resolveClientOptions(options: ClientOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedClientOptions {
  return {
    address: options.address || env.DROVER_ADDR || DEFAULT_ADDRESS,
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
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
  private readonly conn: Connection;

  constructor(options: ClientOptions = {}) {
    const resolved = resolveClientOptions(options);
    this.address = resolved.address;
    this.conn = new Connection(resolved.address, resolved.connectTimeoutMs);
    this.fleet = new FleetApi(this.conn);
    this.runs = new RunsApi(this.conn);
    this.workflows = new WorkflowsApi(this.conn);
    this.devices = new DevicesApi(this.conn);
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
