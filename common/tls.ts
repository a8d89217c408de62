/**
 * How agents and clients check the control plane's certificate, beyond the
 * chain: the name or address they dialled must be in it (Node's usual
 * check), and it must be a server certificate (serverAuth). The control
 * plane's CA also issues agent certificates, so without the second check an
 * agent named like the server's host could pose as the server.
 */
import { checkServerIdentity, type PeerCertificate } from 'node:tls';

const SERVER_AUTH_OID = '1.3.6.1.5.5.7.3.1';

/** For grpc-js `createSsl(..., { checkServerIdentity })`. */
export function checkControlPlaneIdentity(host: string, cert: PeerCertificate): Error | undefined {
  if (!(cert.ext_key_usage ?? []).includes(SERVER_AUTH_OID)) {
    return new Error(`the certificate presented by ${host} is not a server certificate (no serverAuth): something that is not the control plane answered`);
  }
  return checkServerIdentity(host, cert);
}

/**
 * grpc-js passes an IP address as the TLS server name, which Node warns
 * about (DEP0123) on every connection. The warning is about SNI only, so it
 * is dropped; every other warning is printed as Node would.
 */
export function quietIpServerNameWarning(): void {
  process.removeAllListeners('warning');
  process.on('warning', (w: Error & { code?: string }) => {
    if (w.code === 'DEP0123') return;
    process.stderr.write(`(node:${process.pid}) ${w.code ? `[${w.code}] ` : ''}${w.name}: ${w.message}\n`);
  });
}

/** `host:port` or `[v6]:port` split; undefined when `address` is neither. */
export function splitHostPort(address: string): { host: string; port: number } | undefined {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
  return m ? { host: m[1], port: Number(m[2]) } : undefined;
}

/** The TLS server name for a host: none for an IP address (SNI carries names only). */
export function serverName(host: string): string | undefined {
  return /^[\d.:]+$/.test(host) ? undefined : host;
}
