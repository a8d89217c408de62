/**
 * A scripted agent for `drover conformance server`: enrolled like any agent
 * (its own key, a CSR, an enrollment token), linked over AgentService.Connect
 * with its client certificate, and driven message by message. Control
 * messages are opened with the same check the agent uses
 * (common/control-open.ts); the link keeps what arrived, and whether each
 * control message came signed.
 */
import 'reflect-metadata';
import { createPrivateKey, createPublicKey, webcrypto, type KeyObject } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as x509 from '@peculiar/x509';
import { openSignedControl } from '../../common/control-open.js';
import { checkControlPlaneIdentity } from '../../common/tls.js';
import { droverV1, type AgentMessage, type AgentServiceClient, type EnrollResponseOut, type ServerMessageOut } from '../../proto/index.js';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
/** Enroll is one short call; a control plane that takes longer is not answering. */
const ENROLL_DEADLINE_MS = 10_000;

/** One Connect stream of the scripted agent. */
export interface ScriptedLink {
  /** What arrived, control messages unwrapped (those that do not open are left out and counted in `refused`). */
  inbox: ServerMessageOut[];
  /** Control messages that arrived unsigned or did not open. */
  refused: string[];
  /** The stream ended (closed by the control plane, or failed). */
  ended: boolean;
  send(m: AgentMessage): void;
  close(): void;
}

export class ScriptedAgent {
  private constructor(
    readonly name: string,
    private readonly client: AgentServiceClient,
    private readonly controlKey: KeyObject,
  ) {}

  /** Enrolls `name` at `address` (the control plane's certificate checked against `caPem`) with an enrollment token. */
  static async enroll(address: string, caPem: string, token: string, name: string): Promise<ScriptedAgent> {
    const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${name}`, keys, signingAlgorithm: ALG });
    const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    const keyPem = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }).toString();
    const serverOnly = grpc.credentials.createSsl(Buffer.from(caPem), null, null, { checkServerIdentity: checkControlPlaneIdentity });
    const enroller = new (droverV1().AgentService)(address, serverOnly);
    const res = await new Promise<EnrollResponseOut>((resolve, reject) =>
      enroller.Enroll({ token, name, csrPem: csr.toString('pem'), labels: {} }, { deadline: Date.now() + ENROLL_DEADLINE_MS }, (err, r) => {
        enroller.close();
        if (err) reject(new Error(`the control plane did not enroll the scripted agent ${name}: ${err.details}`));
        else resolve(r!);
      }),
    );
    if (res.status !== 'ENROLL_STATUS_ISSUED') throw new Error(`the control plane did not issue a certificate to the scripted agent ${name}: ${res.message}`);
    const mtls = grpc.credentials.createSsl(Buffer.from(caPem), Buffer.from(keyPem), Buffer.from(res.certificatePem), { checkServerIdentity: checkControlPlaneIdentity });
    const client = new (droverV1().AgentService)(address, mtls, { 'grpc.use_local_subchannel_pool': 1 });
    return new ScriptedAgent(name, client, createPublicKey(res.controlKeyPem));
  }

  connect(): ScriptedLink {
    const call = this.client.Connect();
    const link: ScriptedLink = {
      inbox: [],
      refused: [],
      ended: false,
      send: (m) => {
        if (!link.ended) call.write(m);
      },
      close: () => call.cancel(),
    };
    call.on('data', (m: ServerMessageOut) => {
      if (m.body !== 'signed') {
        if (m.body === 'welcome' || m.body === 'ack' || m.body === 'reject') link.inbox.push(m);
        else link.refused.push(`an unsigned ${m.body}`);
        return;
      }
      const opened = openSignedControl(m.signed!, this.controlKey, this.name);
      if (!opened.ok) link.refused.push(opened.why);
      else if (opened.envelope.message) link.inbox.push(opened.envelope.message);
    });
    const end = () => (link.ended = true);
    call.on('end', end);
    call.on('status', end);
    call.on('error', end);
    return link;
  }

  close(): void {
    this.client.close();
  }
}
