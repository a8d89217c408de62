/**
 * Why a TLS handshake with the control plane failed, in words a person can
 * act on. Asked only after a connection failed (off every hot path).
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { serverName, splitHostPort } from '../common/tls.js';
import { ServerUnreachableError } from './errors.js';

/** How long the diagnosis may take before it gives up and says nothing. */
const DIAGNOSE_TIMEOUT_MS = 1500;

/**
 * What answers at `address`: 'silent' when nothing does (the caller's
 * SERVER_UNREACHABLE fits), 'answers' when the handshake works (plaintext:
 * when a TCP connection opens), else a ServerUnreachableError naming the
 * problem.
 */
export function diagnoseTls(address: string, sec: { caPem?: string; insecure: boolean }): Promise<ServerUnreachableError | 'answers' | 'silent'> {
  const { host, port } = splitHostPort(address) ?? { host: address, port: 443 };
  return new Promise((resolve) => {
    const done = (e: ServerUnreachableError | 'answers' | 'silent') => {
      clearTimeout(timer);
      sock.destroy();
      resolve(e);
    };
    const timer = setTimeout(() => done('silent'), DIAGNOSE_TIMEOUT_MS);
    let sock: Socket;
    if (sec.insecure) {
      // A plaintext client cannot tell a TLS server from another: whether anything listens is all it learns.
      sock = netConnect({ host, port }, () => done('answers'));
      sock.on('error', () => done('silent'));
      return;
    }
    const tls = tlsConnect({ host, port, ca: sec.caPem, servername: serverName(host), ALPNProtocols: ['h2'], rejectUnauthorized: false });
    sock = tls;
    tls.on('secureConnect', () => {
      const why = tls.authorizationError;
      if (!why) return done('answers');
      done(
        new ServerUnreachableError(`the control plane at ${address} presents a certificate this client does not trust (${why})`, {
          hint: 'pass --ca <server data dir>/ca.pem (or set DROVER_CA) to trust the control plane\'s own CA; connect by a name the certificate holds, or add the name with `drover server --advertise NAME`',
        }),
      );
    });
    tls.on('error', (err: NodeJS.ErrnoException) => {
      if (/wrong version number|packet length too long|unknown protocol|ECONNRESET/i.test(`${err.message} ${err.code}`)) {
        return done(
          new ServerUnreachableError(`the control plane at ${address} does not speak TLS`, {
            hint: 'it was started with --insecure: pass --insecure to this client as well (loopback only), or restart the server without it',
          }),
        );
      }
      done('silent');
    });
  });
}
