/**
 * What a process started by tests or the benchmark needs to talk to a
 * control plane it started: the admin token and CA the server wrote into its
 * data dir on first start, and enrollment tokens made with them.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DroverClient, type ClientOptions } from '../../sdk/index.js';

export interface ServerCredentials {
  /** The first admin token (<data-dir>/admin.token). */
  token: string;
  /** <data-dir>/ca.pem */
  caFile: string;
}

/** Reads the admin token and CA path of a server's data dir. */
export function readServerCredentials(dataDir: string): ServerCredentials {
  return { token: readFileSync(join(dataDir, 'admin.token'), 'utf8').trim(), caFile: join(dataDir, 'ca.pem') };
}

/** Client options for a server: its address, admin token and CA. */
export function clientOptionsFor(address: string, creds: ServerCredentials): ClientOptions {
  return { address, token: creds.token, ca: creds.caFile };
}

/** A multi-use enrollment token (valid a day), made with the admin token. */
export async function createEnrollToken(address: string, creds: ServerCredentials, options: { uses?: number; ttlMs?: number } = {}): Promise<string> {
  const client = new DroverClient(clientOptionsFor(address, creds));
  try {
    return (await client.access.createEnrollToken({ ttlMs: options.ttlMs ?? 86_400_000, uses: options.uses ?? 0, description: 'test/bench' })).token;
  } finally {
    client.close();
  }
}
