import { createServer } from 'node:net';
import { InvalidInputError } from '../../errors.js';

/** Rejects with a clear InvalidInputError when `host:port` is taken; `what` says what the port is for (e.g. "the dashboard's, --port + 1"). */
export function assertPortFree(port: number, host: string, what = ''): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') {
        reject(
          new InvalidInputError(`port ${port} on ${host}${what ? ` (${what})` : ''} is already in use (another drover dev or server?)`, {
            hint: `stop whatever holds it, or pick another port with --port, e.g. \`drover dev --port ${port + (what ? 1 : 2)}\``,
            cause: err,
          }),
        );
      } else reject(new InvalidInputError(`cannot listen on ${host}:${port}: ${err.message}`, { cause: err }));
    });
    server.listen(port, host, () => server.close(() => resolve()));
  });
}

/** How many ports `freePortPair` tries before giving up. */
const PAIR_TRIES = 20;

/**
 * A port on `host` that is free, with the one after it free too (a control
 * plane and its dashboard, as `drover dev` lays them out), picked by the
 * system. Another process may still take one before it is used; the caller
 * fails clearly if so.
 */
export async function freePortPair(host: string): Promise<number> {
  for (let i = 0; i < PAIR_TRIES; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, host, () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
      });
    });
    if (port > 0 && port < 65535 && (await assertPortFree(port + 1, host).then(() => true, () => false))) return port;
  }
  throw new InvalidInputError(`found no two free ports in a row on ${host} after ${PAIR_TRIES} tries`);
}
