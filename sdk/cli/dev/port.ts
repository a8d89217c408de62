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
