/**
 * The control plane's own certificate authority (docs/security.md).
 *
 * On the first start the data dir gets, all 0600 and never overwritten:
 *   ca.pem, ca.key          the CA (ECDSA P-256, ten years)
 *   control-signing.key     Ed25519 key that signs every control message to agents
 * and, re-issued whenever it no longer covers the addresses served or nears
 * its end, server.pem/server.key (the gRPC server certificate, signed by the CA).
 *
 * Agents enroll with a token that carries the SHA-256 of the CA certificate,
 * so they verify the server on first contact (no trust-on-first-use), and
 * get a client certificate naming them (CN=<agent name>, clientAuth only).
 */
import 'reflect-metadata';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, webcrypto, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { writeSecretFile } from '../../common/secret-file.js';

x509.cryptoProvider.set(webcrypto as Crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** The CA outlives every certificate it signs by far; rotating it is a documented, manual step. */
const CA_LIFETIME_MS = 10 * 365 * DAY_MS;
/** The server certificate is re-issued on start when less than this is left. */
const SERVER_LIFETIME_MS = 365 * DAY_MS;
const SERVER_RENEW_BEFORE_MS = 30 * DAY_MS;
/** Certificates are valid from a little before they are made, for hosts whose clocks run behind. */
const BACKDATE_MS = 5 * 60_000;
const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';

/** Why an agent certificate is not accepted; the message says what to do. */
export class CertificateError extends Error {
  override name = 'CertificateError';
  readonly code = 'BAD_CERTIFICATE';
}

export interface AgentCertificate {
  name: string;
  serial: string;
  notBeforeMs: number;
  notAfterMs: number;
  fingerprint: string;
}

export interface IssuedCertificate {
  certPem: string;
  serial: string;
  notAfterMs: number;
  fingerprint: string;
}

/** SHA-256 of a certificate's DER, hex: what enrollment tokens carry. */
export function certificateHash(pemOrDer: string | Buffer): string {
  const der = typeof pemOrDer === 'string' ? new X509Certificate(pemOrDer).raw : pemOrDer;
  return createHash('sha256').update(der).digest('hex');
}

function randomSerial(): string {
  const b = randomBytes(16);
  b[0] &= 0x7f; // positive
  b[0] |= 0x10; // no leading zero byte to strip
  return b.toString('hex');
}

async function importSigningKey(pem: string): Promise<CryptoKey> {
  const der = createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']) as Promise<CryptoKey>;
}

async function exportPrivatePem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }).toString();
}

function read(path: string): string | undefined {
  return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
}

export interface PkiOptions {
  dataDir: string;
  /** Host names and IP addresses clients use to reach the server (SANs); loopback is always added. */
  hosts: string[];
  now: () => number;
}

export class Pki {
  private constructor(
    readonly caPem: string,
    private readonly ca: X509Certificate,
    private readonly caKey: CryptoKey,
    private readonly caName: string,
    readonly serverCertPem: string,
    readonly serverKeyPem: string,
    /** Signs control messages (Ed25519). */
    readonly controlKey: KeyObject,
    private readonly now: () => number,
  ) {}

  /** SHA-256 of the CA certificate (hex), as enrollment tokens carry it. */
  get caHash(): string {
    return certificateHash(this.ca.raw);
  }

  /** SPKI PEM of the control-message key, handed to agents at enrollment. */
  get controlPublicKeyPem(): string {
    return createPublicKey(this.controlKey).export({ type: 'spki', format: 'pem' }).toString();
  }

  /** Loads the CA from the data dir, creating whatever is missing. */
  static async open(o: PkiOptions): Promise<Pki> {
    const caCertFile = join(o.dataDir, 'ca.pem');
    const caKeyFile = join(o.dataDir, 'ca.key');
    let caPem = read(caCertFile);
    let caKeyPem = read(caKeyFile);
    if (!caPem !== !caKeyPem) {
      throw new CertificateError(
        `${caPem ? caKeyFile : caCertFile} is missing but ${caPem ? caCertFile : caKeyFile} exists: restore it from a backup, or move both away to create a new CA (every agent must then enroll again)`,
      );
    }
    if (!caPem || !caKeyPem) {
      const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
      const start = o.now() - BACKDATE_MS;
      const cert = await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber: randomSerial(),
        name: `CN=drover CA ${randomBytes(4).toString('hex')}`,
        notBefore: new Date(start),
        notAfter: new Date(start + CA_LIFETIME_MS),
        keys,
        signingAlgorithm: ALG,
        extensions: [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        ],
      });
      caKeyPem = await exportPrivatePem(keys.privateKey);
      caPem = cert.toString('pem') + '\n';
      writeSecretFile(caKeyFile, caKeyPem);
      writeSecretFile(caCertFile, caPem);
    }
    const ca = new X509Certificate(caPem);
    const caKey = await importSigningKey(caKeyPem);

    const signingFile = join(o.dataDir, 'control-signing.key');
    let signingPem = read(signingFile);
    if (!signingPem) {
      const { privateKey } = generateKeyPairSync('ed25519');
      signingPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      writeSecretFile(signingFile, signingPem);
    }

    const { certPem, keyPem } = await serverCertificate(o, ca, caKey);
    return new Pki(caPem, ca, caKey, ca.subject, certPem, keyPem, createPrivateKey(signingPem), o.now);
  }

  /**
   * Signs an agent's CSR: checks its self-signature and that it names
   * `name`, then issues CN=<name> for clientAuth, valid `ttlMs`.
   */
  async issueAgentCertificate(csrPem: string, name: string, ttlMs: number): Promise<IssuedCertificate> {
    const csr = parseCsr(csrPem, name);
    if (!(await csr.verify())) throw new CertificateError('the certificate request is not signed by its own key: generate a new one');
    const start = this.now() - BACKDATE_MS;
    const notAfterMs = this.now() + ttlMs;
    const serial = randomSerial();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: `CN=${name}`,
      issuer: this.caName,
      notBefore: new Date(start),
      notAfter: new Date(notAfterMs),
      signingKey: this.caKey,
      publicKey: csr.publicKey,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      ],
    });
    return { certPem: cert.toString('pem') + '\n', serial: serial.toUpperCase(), notAfterMs, fingerprint: csrFingerprint(csrPem, name) };
  }

  /**
   * Checks a certificate an agent presented over TLS: issued by this CA for
   * clientAuth, valid now. Revocation is the caller's (the store's deny-list).
   */
  verifyAgentCertificate(der: Buffer): AgentCertificate {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(der);
    } catch {
      throw new CertificateError('the client certificate cannot be parsed');
    }
    if (!cert.checkIssued(this.ca) || !cert.verify(this.ca.publicKey)) {
      throw new CertificateError('the client certificate was not issued by this control plane\'s CA: enroll the agent again with a token from this control plane');
    }
    if (!(cert.keyUsage ?? []).includes(CLIENT_AUTH_OID)) throw new CertificateError('the certificate is not a client certificate');
    const name = /^CN=([^\n,]+)$/.exec(cert.subject.trim())?.[1];
    if (!name) throw new CertificateError(`the certificate subject "${cert.subject}" does not name an agent`);
    const notBeforeMs = Date.parse(cert.validFrom);
    const notAfterMs = Date.parse(cert.validTo);
    const now = this.now();
    if (now > notAfterMs) {
      throw new CertificateError(`the certificate of agent "${name}" expired at ${new Date(notAfterMs).toISOString()}; it was not renewed in time: enroll it again (drover token create --enroll)`);
    }
    if (now < notBeforeMs - BACKDATE_MS) throw new CertificateError(`the certificate of agent "${name}" is not valid yet: check the clocks`);
    const fingerprint = createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
    return { name, serial: cert.serialNumber.toUpperCase(), notBeforeMs, notAfterMs, fingerprint };
  }
}

function parseCsr(csrPem: string, name: string): x509.Pkcs10CertificateRequest {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch {
    throw new CertificateError('the certificate request is not a PEM PKCS#10 request');
  }
  if (csr.subject !== `CN=${name}`) throw new CertificateError(`the certificate request names "${csr.subject}", not CN=${name}`);
  return csr;
}

/** SHA-256 (hex) of the public key in a CSR (SPKI DER): identifies the agent's key across requests. */
export function csrFingerprint(csrPem: string, name: string): string {
  const csr = parseCsr(csrPem, name);
  return createHash('sha256').update(Buffer.from(csr.publicKey.rawData)).digest('hex');
}

/** The hosts a server certificate must name: loopback, this host's name, and the configured ones. */
function wantedHosts(hosts: string[]): { dns: string[]; ips: string[] } {
  const all = new Set(['localhost', '127.0.0.1', '::1', ...hosts.filter((h) => h && h !== '0.0.0.0' && h !== '::')]);
  return { dns: [...all].filter((h) => !isIP(h)), ips: [...all].filter((h) => isIP(h)) };
}

function covers(cert: X509Certificate, want: { dns: string[]; ips: string[] }): boolean {
  const san = cert.subjectAltName ?? '';
  const have = new Set(san.split(/,\s*/).map((s) => s.replace(/^(DNS|IP Address):/, '').toLowerCase()));
  // Node prints IPv6 SANs expanded; compare on the canonical text of both.
  const norm = (ip: string) => (isIP(ip) === 6 ? new URL(`http://[${ip}]`).hostname.slice(1, -1) : ip);
  const haveNorm = new Set([...have].map((h) => (isIP(h) ? norm(h) : h)));
  return want.dns.every((d) => haveNorm.has(d.toLowerCase())) && want.ips.every((ip) => haveNorm.has(norm(ip)));
}

async function serverCertificate(o: PkiOptions, ca: X509Certificate, caKey: CryptoKey): Promise<{ certPem: string; keyPem: string }> {
  const certFile = join(o.dataDir, 'server.pem');
  const keyFile = join(o.dataDir, 'server.key');
  const want = wantedHosts(o.hosts);
  const certPem = read(certFile);
  const keyPem = read(keyFile);
  if (certPem && keyPem) {
    const cert = new X509Certificate(certPem);
    const fresh = Date.parse(cert.validTo) - o.now() > SERVER_RENEW_BEFORE_MS;
    if (fresh && cert.checkIssued(ca) && cert.verify(ca.publicKey) && covers(cert, want)) return { certPem, keyPem };
  }
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const start = o.now() - BACKDATE_MS;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: 'CN=drover control plane',
    issuer: ca.subject,
    notBefore: new Date(start),
    notAfter: new Date(start + SERVER_LIFETIME_MS),
    signingKey: caKey,
    publicKey: keys.publicKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...want.dns.map((value) => ({ type: 'dns' as const, value })),
        ...want.ips.map((value) => ({ type: 'ip' as const, value })),
      ]),
    ],
  });
  const out = { certPem: cert.toString('pem') + '\n', keyPem: await exportPrivatePem(keys.privateKey) };
  writeSecretFile(keyFile, out.keyPem);
  writeSecretFile(certFile, out.certPem);
  return out;
}
