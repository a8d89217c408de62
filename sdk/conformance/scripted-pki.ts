/**
 * What `drover conformance agent --signed` needs to be a control plane an
 * agent enrolls with (docs/security.md): a throwaway CA, a server
 * certificate for 127.0.0.1 presented with the CA (the agent finds the CA by
 * the hash its enrollment token carries), client certificates issued from
 * the agent's CSR, and an Ed25519 key that seals control messages the way
 * docs/protocol.md rule control-signed says (one message per seal: a tree of
 * one leaf, no proof).
 */
import 'reflect-metadata';
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign, webcrypto, X509Certificate, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { CONTROL_SIGNATURE_CONTEXT, leafHash } from '../../common/control-tree.js';
import { encodeMessage, type ServerMessage } from '../../proto/index.js';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
/** Long enough for any check, short enough that nothing of it is worth keeping. */
const LIFETIME_MS = 24 * 3600_000;

async function privatePem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }).toString();
}

export class ScriptedPki {
  private counter = Date.now() * 1000;

  private constructor(
    readonly caPem: string,
    private readonly caName: string,
    private readonly caKey: CryptoKey,
    readonly serverCertPem: string,
    readonly serverKeyPem: string,
    private readonly control: { privateKey: KeyObject; publicPem: string },
  ) {}

  static async create(): Promise<ScriptedPki> {
    const now = Date.now();
    const caKeys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
    const caName = `CN=drover conformance CA ${randomBytes(4).toString('hex')}`;
    const ca = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomBytes(8).toString('hex'),
      name: caName,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + LIFETIME_MS),
      keys: caKeys,
      signingAlgorithm: ALG,
      extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
    });
    const serverKeys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
    const server = await x509.X509CertificateGenerator.create({
      serialNumber: randomBytes(8).toString('hex'),
      subject: 'CN=drover conformance control plane',
      issuer: caName,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + LIFETIME_MS),
      signingKey: caKeys.privateKey,
      publicKey: serverKeys.publicKey,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }]),
      ],
    });
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const control = { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
    return new ScriptedPki(`${ca.toString('pem')}\n`, caName, caKeys.privateKey, `${server.toString('pem')}\n`, await privatePem(serverKeys.privateKey), control);
  }

  /** An enrollment token for this CA, in the form agents check (`drover-enroll.<CA sha256>.<id>.<secret>`). */
  enrollToken(): string {
    const hash = createHash('sha256').update(new X509Certificate(this.caPem).raw).digest('hex');
    return `drover-enroll.${hash}.${randomBytes(6).toString('hex')}.${randomBytes(16).toString('hex')}`;
  }

  get controlKeyPem(): string {
    return this.control.publicPem;
  }

  /** A client certificate CN=<name> for the CSR's key. */
  async issue(csrPem: string, name: string): Promise<string> {
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomBytes(8).toString('hex'),
      subject: `CN=${name}`,
      issuer: this.caName,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + LIFETIME_MS),
      signingKey: this.caKey,
      publicKey: csr.publicKey,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      ],
    });
    return `${cert.toString('pem')}\n`;
  }

  /** `msg` sealed for `agent`: a SignedControl over a ControlEnvelope with the next counter. */
  seal(agent: string, msg: ServerMessage): ServerMessage {
    const payload = encodeMessage('ControlEnvelope', { agent, counter: ++this.counter, message: msg });
    const signature = sign(null, Buffer.concat([CONTROL_SIGNATURE_CONTEXT, leafHash(payload)]), this.control.privateKey);
    return { signed: { payload, signature, proof: [], index: 0 } };
  }
}
