/**
 * How a command reaches the control plane: address, API token and CA, each
 * from its flag (on the command or before it), the environment, the CLI
 * config file, or what `drover dev` left in ./.drover/dev/server, in that
 * order of preference.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import type { ClientOptions, DroverClient } from '../client.js';
import { DEFAULT_ADDRESS } from '../defaults.js';
import { loadConfig } from './config.js';
import { loadClient } from './load-client.js';

export { caOption, serverOption, tokenOption } from './server-options.js';

/** `-o, --output table|json`. */
export function outputOption(): Option {
  return new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table');
}

/** The first value of a global or command option, from this command up. */
function flag(cmd: Command, key: 'server' | 'token' | 'ca' | 'insecure'): unknown {
  for (let c: Command | null = cmd; c; c = c.parent) {
    const v = c.opts<Record<string, unknown>>()[key];
    if (v) return v;
  }
  return undefined;
}

/**
 * The control plane the user named for this command, if any: `--server`
 * (`from: 'flag'`) or DROVER_ADDR (`from: 'env'`). The config file and the
 * default do not count: commands that work offline (`drover validate`) dial
 * only when asked to.
 */
export function explicitServer(cmd: Command, env = process.env): { address: string; from: 'flag' | 'env' } | undefined {
  const fromFlag = flag(cmd, 'server') as string | undefined;
  if (fromFlag) return { address: fromFlag, from: 'flag' };
  return env.DROVER_ADDR ? { address: env.DROVER_ADDR, from: 'env' } : undefined;
}

/** Everything a client needs, resolved for `cmd`. */
export function clientOptions(cmd: Command, env = process.env): ClientOptions {
  const file = loadConfig(env);
  const dev = join('.drover', 'dev', 'server');
  const devToken = join(dev, 'admin.token');
  const devCa = join(dev, 'ca.pem');
  const token = (flag(cmd, 'token') as string) || env.DROVER_TOKEN || file.token || (existsSync(devToken) ? readFileSync(devToken, 'utf8').trim() : '');
  const ca = (flag(cmd, 'ca') as string) || env.DROVER_CA || file.ca || (existsSync(devCa) ? devCa : undefined);
  return {
    address: (flag(cmd, 'server') as string) || env.DROVER_ADDR || file.address || DEFAULT_ADDRESS,
    token,
    ca,
    insecure: !!flag(cmd, 'insecure'),
  };
}

/**
 * Runs `fn` with a client for the command's server, closing it afterwards.
 * The client (gRPC, protobuf) is loaded here, on first use and with a code
 * cache (load-client.ts), so that commands which never dial start without
 * it (docs/performance.md).
 */
export async function withClient<T>(cmd: Command, fn: (client: DroverClient) => Promise<T>): Promise<T> {
  const { DroverClient } = await loadClient();
  const client = new DroverClient(clientOptions(cmd));
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/** Writes a value as pretty JSON on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}
