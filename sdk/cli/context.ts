import { Option, type Command } from 'commander';
import { DroverClient } from '../client.js';
import { DEFAULT_ADDRESS } from '../connection.js';

/** `--server ADDR`, accepted both before the command and after it. */
export function serverOption(): Option {
  return new Option('--server <addr>', `control plane address (default: $DROVER_ADDR or ${DEFAULT_ADDRESS})`);
}

/** `-o, --output table|json`. */
export function outputOption(): Option {
  return new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table');
}

/** The address chosen for a command: its own --server, the global one, DROVER_ADDR, the default. */
export function serverAddress(cmd: Command): string {
  for (let c: Command | null = cmd; c; c = c.parent) {
    const server = c.opts<{ server?: string }>().server;
    if (server) return server;
  }
  return process.env.DROVER_ADDR || DEFAULT_ADDRESS;
}

/** Runs `fn` with a client for the command's server, closing it afterwards. */
export async function withClient<T>(cmd: Command, fn: (client: DroverClient) => Promise<T>): Promise<T> {
  const client = new DroverClient({ address: serverAddress(cmd) });
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
