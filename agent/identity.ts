/**
 * The agent's identity (docs/security.md): a key made here that never
 * leaves the host, a client certificate from the control plane's CA naming
 * this agent, the CA itself, and the public key that signs control messages.
 * Kept in <state-dir>/identity/, every file 0600.
 *
 * Enrollment, once: the enrollment token carries the CA's SHA-256, so the
 * agent first reads the certificate chain the server presents (without
 * trusting it), finds the CA in it and compares hashes (kubeadm's
 * discovery-token-ca-cert-hash). Only then does it send its CSR with the
 * token, over TLS verified against that CA.
 */
import 'reflect-metadata';
import { createHash, createPrivateKey, createPublicKey, webcrypto, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { createUser } from '@nats-io/nkeys';
import * as x509 from '@peculiar/x509';
import { LEADER_METADATA_KEY } from '../common/errors.js';
import { writeSecretFile } from '../common/secret-file.js';
import { checkControlPlaneIdentity, serverName, splitHostPort } from '../common/tls.js';
import { droverV1, type EnrollResponseOut } from '../proto/index.js';
import type { Logger } from './log.js';

x509.cryptoProvider.set(webcrypto as Crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const ENROLL_PREFIX = 'drover-enroll';
/** How often a pending enrollment (--enroll-approve) asks again. */
const APPROVAL_POLL_MS = 3000;
/** How long one enrollment call may take. */
const ENROLL_DEADLINE_MS = 15_000;

/** Enrollment or identity trouble that retrying will not fix; the message says what will. */
export class IdentityError extends Error {
  override name = 'IdentityError';
  readonly code = 'BAD_IDENTITY';
}

export interface Identity {
  name: string;
  keyPem: string;
  certPem: string;
  caPem: string;
  /** Verifies control messages (Ed25519). */
  controlKey: KeyObject;
  notBeforeMs: number;
  notAfterMs: number;
  /** NATS agents: the user nkey seed made here, and the JWT the control plane signed for it (its own subjects only). */
  natsSeedFile: string;
  natsJwtFile: string;
}

const dirOf = (stateDir: string) => join(stateDir, 'identity');
/** agent.pem holds the certificate and its key together, so one atomic write replaces both. */
const FILES = { pair: 'agent.pem', ca: 'ca.pem', control: 'control.pub', natsSeed: 'nats.nk', natsJwt: 'nats.jwt' } as const;
const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----\n?/;
const KEY_BLOCK = /-----BEGIN PRIVATE KEY-----[^-]+-----END PRIVATE KEY-----\n?/;

function describe(certPem: string): { name: string; notBeforeMs: number; notAfterMs: number } {
  const c = new X509Certificate(certPem);
  return { name: /CN=([^\n,]+)/.exec(c.subject)?.[1] ?? '', notBeforeMs: Date.parse(c.validFrom), notAfterMs: Date.parse(c.validTo) };
}

/** The identity in `stateDir`, or undefined when the agent has not enrolled yet. */
export function loadIdentity(stateDir: string): Identity | undefined {
  const dir = dirOf(stateDir);
  const path = (f: string) => join(dir, f);
  if (!existsSync(path(FILES.pair))) return undefined;
  try {
    const pair = readFileSync(path(FILES.pair), 'utf8');
    const certPem = CERT_BLOCK.exec(pair)?.[0];
    const keyPem = KEY_BLOCK.exec(pair)?.[0];
    if (!certPem || !keyPem) throw new Error(`${FILES.pair} lacks its certificate or key`);
    return {
      ...describe(certPem),
      keyPem,
      certPem,
      caPem: readFileSync(path(FILES.ca), 'utf8'),
      controlKey: createPublicKey(readFileSync(path(FILES.control), 'utf8')),
      natsSeedFile: path(FILES.natsSeed),
      natsJwtFile: path(FILES.natsJwt),
    };
  } catch (err) {
    throw new IdentityError(`the identity in ${dir} is damaged (${(err as Error).message}): move the folder away and enroll again with a new token (drover token create --enroll)`);
  }
}

/** A fresh key pair and a CSR for CN=<name>. */
export async function newCertificateRequest(name: string): Promise<{ keyPem: string; csrPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${name}`, keys, signingAlgorithm: ALG });
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }).toString();
  return { keyPem, csrPem: csr.toString('pem') };
}

/**
 * Stores a (renewed) certificate with its key in one atomic write (a crash
 * leaves the old pair or the new one), and the NATS credentials that go with it.
 */
export function saveCertificate(stateDir: string, keyPem: string, certPem: string, natsJwt = ''): Identity {
  const dir = dirOf(stateDir);
  if (natsJwt) writeSecretFile(join(dir, FILES.natsJwt), `${natsJwt}\n`);
  writeSecretFile(join(dir, FILES.pair), `${certPem.trim()}\n${keyPem.trim()}\n`);
  const id = loadIdentity(stateDir);
  if (!id) throw new IdentityError(`cannot read back the certificate written to ${dir}`);
  return id;
}

/** The CA hash an enrollment token carries; throws IdentityError for anything else. */
export function tokenCaHash(token: string): string {
  const parts = token.trim().split('.');
  if (parts[0] !== ENROLL_PREFIX || parts.length !== 4 || !/^[0-9a-f]{64}$/.test(parts[1])) {
    throw new IdentityError(
      parts[0] === 'drover-api'
        ? 'that is an API token; an agent enrolls with an enrollment token: drover token create --enroll'
        : `--token is not an enrollment token (it should look like ${ENROLL_PREFIX}.<ca hash>.<id>.<secret>): make one with drover token create --enroll`,
    );
  }
  return parts[1];
}

function hostPort(address: string): { host: string; port: number } {
  const hp = splitHostPort(address);
  if (!hp) throw new IdentityError(`--server "${address}" is not host:port`);
  return hp;
}

/** The certificates the server presents, leaf first; nothing about them is trusted yet. */
function presentedChain(address: string): Promise<PeerCertificate[]> {
  const { host, port } = hostPort(address);
  return new Promise((resolve, reject) => {
    const sock = tlsConnect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['h2'], servername: serverName(host) });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no TLS handshake with ${address} within ${ENROLL_DEADLINE_MS / 1000} s`));
    }, ENROLL_DEADLINE_MS);
    sock.once('secureConnect', () => {
      clearTimeout(timer);
      const chain: PeerCertificate[] = [];
      let c = sock.getPeerCertificate(true) as PeerCertificate & { issuerCertificate?: PeerCertificate };
      while (c?.raw && !chain.some((x) => x.raw.equals(c.raw))) {
        chain.push(c);
        c = c.issuerCertificate as typeof c;
      }
      sock.destroy();
      resolve(chain);
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** The CA PEM the server presents, once its hash is the token's; throws IdentityError otherwise. */
export async function discoverCa(address: string, wantHash: string): Promise<string> {
  let chain: PeerCertificate[];
  try {
    chain = await presentedChain(address);
  } catch (err) {
    throw new Error(`cannot reach the control plane at ${address} over TLS: ${(err as Error).message}`);
  }
  const hashes = chain.map((c) => createHash('sha256').update(c.raw).digest('hex'));
  const i = hashes.indexOf(wantHash);
  if (i < 0) {
    throw new IdentityError(
      `the server at ${address} does not present the CA this enrollment token was made for (expected sha256 ${wantHash.slice(0, 16)}…, it presents ${hashes.map((h) => h.slice(0, 16) + '…').join(', ') || 'nothing'}): the token belongs to another control plane, or something stands in between. Nothing was sent.`,
    );
  }
  return new X509Certificate(chain[i].raw).toString();
}

export interface EnrollOptions {
  server: string;
  token: string;
  name: string;
  stateDir: string;
  /** The agent links over NATS: ask for NATS credentials too. */
  nats: boolean;
  log: Logger;
}

/** One Enroll call over TLS verified against `caPem` (the fleet simulator uses it too). */
export function requestEnrollment(address: string, caPem: string, req: { token: string; name: string; csrPem: string; natsPublicKey?: string }): Promise<EnrollResponseOut> {
  const client = new (droverV1().AgentService)(address, grpc.credentials.createSsl(Buffer.from(caPem), null, null, { checkServerIdentity: checkControlPlaneIdentity }), { 'grpc.enable_channelz': 0 });
  return new Promise<EnrollResponseOut>((resolve, reject) => {
    client.Enroll({ ...req, labels: {} }, { deadline: Date.now() + ENROLL_DEADLINE_MS }, (err, res) => {
      client.close();
      if (!err) return resolve(res!);
      if (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED) {
        // A standby replica names the leader: the next try goes there.
        const leader = err.metadata?.get(LEADER_METADATA_KEY)[0];
        return reject(Object.assign(new Error(`the control plane at ${address} did not answer: ${err.details}`), { leader: typeof leader === 'string' ? leader : '' }));
      }
      reject(new IdentityError(`the control plane refused to enroll this agent: ${err.details}`));
    });
  });
}

/**
 * Enrolls this agent: verifies the server by the token's CA hash, sends a
 * CSR, waits for approval when the server asks for it, and stores the
 * identity. Network trouble is retried with a growing pause; a refusal is
 * an IdentityError.
 */
export async function enroll(o: EnrollOptions): Promise<Identity> {
  const wantHash = tokenCaHash(o.token);
  const { keyPem, csrPem } = await newCertificateRequest(o.name);
  const dir = dirOf(o.stateDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // A NATS agent makes its NATS user key here too; only the public half is sent.
  let natsPublicKey = '';
  if (o.nats) {
    const user = createUser();
    writeSecretFile(join(dir, FILES.natsSeed), `${new TextDecoder().decode(user.getSeed())}\n`);
    natsPublicKey = user.getPublicKey();
  }
  let pause = 500;
  let announced = false;
  // A replicated control plane: any replica may answer; a standby names the leader.
  const servers = o.server.split(',');
  let at = 0;
  let server = servers[0];
  for (;;) {
    try {
      const caPem = await discoverCa(server, wantHash);
      const res = await requestEnrollment(server, caPem, { token: o.token, name: o.name, csrPem, natsPublicKey });
      if (res.status === 'ENROLL_STATUS_ISSUED') {
        writeSecretFile(join(dir, FILES.ca), caPem);
        writeSecretFile(join(dir, FILES.control), res.controlKeyPem);
        const id = saveCertificate(o.stateDir, keyPem, res.certificatePem, res.natsJwt);
        o.log.info({ server: o.server, expires: new Date(id.notAfterMs).toISOString() }, 'enrolled: this agent has its own certificate now; the enrollment token is no longer needed');
        return id;
      }
      if (!announced) {
        o.log.warn({ server: o.server }, `enrollment is waiting for an admin: drover agent approve ${o.name}`);
        process.stderr.write(`drover agent: waiting for approval; an admin runs: drover agent approve ${o.name}\n`);
        announced = true;
      }
      await new Promise((r) => setTimeout(r, APPROVAL_POLL_MS));
    } catch (err) {
      if (err instanceof IdentityError) throw err;
      const leader = (err as { leader?: string }).leader;
      if (leader && leader !== server) {
        server = leader;
        continue;
      }
      o.log.warn({ server, err: (err as Error).message, retryInMs: pause }, 'enrollment: control plane not reachable yet; retrying');
      at = (at + 1) % servers.length;
      server = servers[at];
      await new Promise((r) => setTimeout(r, pause));
      if (at === 0) pause = Math.min(pause * 2, 10_000);
    }
  }
}
