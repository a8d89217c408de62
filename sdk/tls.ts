/**
 * Why a TLS handshake with the control plane failed, in words a person can
 * act on. Asked only after a connection failed (off every hot path).
 */
import { connect as tlsConnect } from 'node:tls';
import { serverName, splitHostPort } from '../common/tls.js';
import { ServerUnreachableError } from './errors.js';

/** How long the diagnosis may take before it gives up and says nothing. */
const DIAGNOSE_TIMEOUT_MS = 1500;

/**
 * Undefined when nothing listens there (the caller's SERVER_UNREACHABLE fits)
 * or the handshake works; else a ServerUnreachableError naming the problem.
 */
export function diagnoseTls(address: string, sec: { caPem?: string; insecure: boolean }): Promise<ServerUnreachableError | undefined> {
  // A plaintext client cannot tell a TLS server from a silent one: nothing to add.
  if (sec.insecure) return Promise.resolve(undefined);
  const { host, port } = splitHostPort(address) ?? { host: address, port: 443 };
  return new Promise((resolve) => {
    const done = (e: ServerUnreachableError | undefined) => {
      clearTimeout(timer);
      resolve(e);
    };
    const timer = setTimeout(() => {
      sock.destroy();
      done(undefined);
    }, DIAGNOSE_TIMEOUT_MS);
    const sock = tlsConnect({ host, port, ca: sec.caPem, servername: serverName(host), ALPNProtocols: ['h2'], rejectUnauthorized: false });
    sock.on('secureConnect', () => {
      const why = sock.authorizationError;
      sock.destroy();
      if (!why) return done(undefined);
      done(
        new ServerUnreachableError(`the control plane at ${address} presents a certificate this client does not trust (${why})`, {
          hint: 'pass --ca <server data dir>/ca.pem (or set DROVER_CA) to trust the control plane\'s own CA; connect by a name the certificate holds, or add the name with `drover server --advertise NAME`',
        }),
      );
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (/wrong version number|packet length too long|unknown protocol|ECONNRESET/i.test(`${err.message} ${err.code}`)) {
        return done(
          new ServerUnreachableError(`the control plane at ${address} does not speak TLS`, {
            hint: 'it was started with --insecure: pass --insecure to this client as well (loopback only), or restart the server without it',
          }),
        );
      }
      done(undefined);
    });
  });
}
