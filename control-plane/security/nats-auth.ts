/**
 * NATS decentralized JWT auth for the agent link (docs/security.md, docs/nats.md).
 *
 * The control plane is the NATS operator of its fleet: on first use it makes
 * an operator, a system account and a `drover` account (nkey seeds in the
 * data dir, 0600), and signs user credentials under the account:
 *
 * - itself: publish on `drover.v1.agent.>` and, for `--store jetstream`, on
 *   its state, log and sample streams' subjects and the JetStream and
 *   object-store API subjects; subscribe to anything (the
 *   agents' up subjects and the subjects of NATS triggers, which workflows
 *   add as they are applied), and answer requests made to it;
 * - each agent, at enrollment: publish only on `drover.v1.agent.<name>.up`,
 *   subscribe only to `drover.v1.agent.<name>.down`;
 * - event publishers (`drover server nats-creds`): publish only on the
 *   subjects named when they were made (never under drover.), and read the
 *   answers to their own requests (`_INBOX.<name>.>`).
 *
 * `drover server nats-config` prints the nats-server configuration (operator,
 * system account, MEMORY resolver with both accounts preloaded) that makes
 * nats-server enforce exactly that. An agent's NATS user cannot read another
 * agent's work or speak for it, and cannot publish on any `.down` subject.
 */
import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Algorithms, encodeAccount, encodeOperator, encodeUser, fmtCreds } from '@nats-io/jwt';
import { createAccount, createOperator, createUser, fromPublic, fromSeed, type KeyPair } from '@nats-io/nkeys';
import { writeSecretFile } from '../../common/secret-file.js';
import { downSubject, NATS_AGENT_WILDCARD, upSubject } from '../../proto/nats.js';

const opts = { algorithm: Algorithms.v2 };
/** Accounts without limits of their own (-1: unlimited); the agents' confinement is in their user permissions. */
const UNLIMITED = { limits: { conn: -1, subs: -1, payload: -1, data: -1, leaf: -1, imports: -1, exports: -1, wildcards: true } };
/**
 * The drover account also has JetStream, unlimited: in operator mode an
 * account whose JWT sets no JetStream limits has JetStream disabled, and the
 * control plane's `--store jetstream` keeps its state in a stream and an
 * object store of this account (docs/scale-out.md). Only the control plane's
 * own user may use the JetStream API; agents and publishers cannot.
 */
const UNLIMITED_WITH_JETSTREAM = { limits: { ...UNLIMITED.limits, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 } };
/**
 * What the control plane's user publishes besides its agents' subjects: the
 * JetStream API, acks and flow-control replies of its consumers, and the
 * object store's chunks ($O.<bucket>.C.*, .M.*) and the key-value entries
 * of the leader lease ($KV.<bucket>.*), for `--store jetstream`.
 */
const JETSTREAM_PUBLISH = ['$JS.API.>', '$JS.ACK.>', '$JS.FC.>', '$O.>', '$KV.>'];
/** The subject prefix of the control plane's state stream (control-plane/store/jetstream-store.ts); only the control plane publishes on it. */
export const STATE_SUBJECTS = 'drover.v1.state.>';
/** The subjects of its run log and fleet sample streams (store/jetstream-logs.ts, store/jetstream-samples.ts); only the control plane publishes on them. */
export const STORE_STREAM_SUBJECTS = ['drover.v1.logs.>', 'drover.v1.samples.>'];

function seedKey(file: string, make: () => KeyPair): KeyPair {
  if (existsSync(file)) return fromSeed(Buffer.from(readFileSync(file, 'utf8').trim()));
  const kp = make();
  writeSecretFile(file, `${new TextDecoder().decode(kp.getSeed())}\n`);
  return kp;
}

/** How long after a request the control plane may still answer it (10 minutes, in ns as NATS JWTs count): a launch waits for its disk write. */
const ANSWER_WITHIN_NS = 600e9;

/** PKCS#8 DER header of an Ed25519 private key; the 32-byte seed follows. */
const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * The account key, signing with Node's Ed25519 (about 60 µs) instead of
 * nkeys' JavaScript one (about 18 ms per signature, 55 ms per user JWT): an
 * enrollment storm of thousands of NATS agents must not wait on it.
 */
class FastKeyPair {
  private readonly pub: string;
  private readonly priv: Uint8Array;
  private readonly key: KeyObject;
  constructor(private readonly kp: KeyPair) {
    this.pub = kp.getPublicKey();
    this.priv = kp.getPrivateKey();
    const raw = (kp as unknown as { getRawSeed(): Uint8Array }).getRawSeed();
    this.key = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8, Buffer.from(raw)]), format: 'der', type: 'pkcs8' });
  }
  getPublicKey(): string {
    return this.pub;
  }
  getPrivateKey(): Uint8Array {
    return this.priv;
  }
  getSeed(): Uint8Array {
    return this.kp.getSeed();
  }
  sign(input: Uint8Array): Uint8Array {
    return new Uint8Array(sign(null, input, this.key));
  }
  verify(input: Uint8Array, sig: Uint8Array): boolean {
    return this.kp.verify(input, sig);
  }
  clear(): void {}
  seal(): Uint8Array {
    throw new Error('not an encryption key');
  }
  open(): Uint8Array | null {
    throw new Error('not an encryption key');
  }
}

/** Thrown for a NATS public key that is not a user nkey. */
export class NatsKeyError extends Error {
  override name = 'NatsKeyError';
}

/** The inbox prefix a publisher's requests use (nats.js `inboxPrefix`, nats CLI `--inbox-prefix`). */
export function publisherInbox(name: string): string {
  return `_INBOX.${name}`;
}

export class NatsAuth {
  private readonly signer: FastKeyPair;

  private constructor(
    private readonly operator: KeyPair,
    private readonly system: KeyPair,
    private readonly account: KeyPair,
  ) {
    this.signer = new FastKeyPair(account);
  }

  /** Loads the keys from the data dir, making whatever is missing. */
  static open(dataDir: string): NatsAuth {
    return new NatsAuth(
      seedKey(join(dataDir, 'nats-operator.nk'), createOperator),
      seedKey(join(dataDir, 'nats-system-account.nk'), createAccount),
      seedKey(join(dataDir, 'nats-account.nk'), createAccount),
    );
  }

  /**
   * The nats-server configuration that enforces the agents' permissions
   * (include it, or run with it). `leaf` adds a leaf-node block: `listen`
   * for the central server that sites connect to (`advertise`: the address
 * sites reach it at, when that is not `listen`), or `remote` (with the
   * site's `credentials` file from leafCreds) for a site's server, whose
   * agents then reach the control plane through it (docs/scale-out.md).
   */
  async serverConfig(leaf: { listen?: string; advertise?: string; remote?: string; credentials?: string } = {}): Promise<string> {
    const sysPub = this.system.getPublicKey();
    const accPub = this.account.getPublicKey();
    const operatorJwt = await encodeOperator('drover', this.operator, { system_account: sysPub }, opts);
    const sysJwt = await encodeAccount('SYS', this.system, UNLIMITED, { ...opts, signer: this.operator });
    const accJwt = await encodeAccount('drover', this.account, UNLIMITED_WITH_JETSTREAM, { ...opts, signer: this.operator });
    return [
      '# nats-server configuration for drover (made by `drover server nats-config`).',
      '# Agents authenticate with the NATS credentials they get at enrollment; each may',
      '# publish only on drover.v1.agent.<name>.up and subscribe only to .<name>.down.',
      `operator: ${operatorJwt}`,
      `system_account: ${sysPub}`,
      'resolver: MEMORY',
      'resolver_preload: {',
      `  ${sysPub}: ${sysJwt}`,
      `  ${accPub}: ${accJwt}`,
      '}',
      ...(leaf.listen ? ['', '# Sites\' leaf nodes connect here (drover server nats-config --leaf-remote on each site).', `leafnodes { listen: "${leaf.listen}"${leaf.advertise ? `, advertise: "${leaf.advertise}"` : ''} }`] : []),
      ...(leaf.remote
        ? [
            '',
            "# This server is a site's leaf node: its agents' subjects reach the central cluster through the remote.",
            `leafnodes { remotes: [ { url: "${leaf.remote}", credentials: "${leaf.credentials ?? ''}", account: "${accPub}" } ] }`,
          ]
        : []),
      '',
    ].join('\n');
  }

  /**
   * Credentials for a site's leaf node (`drover server nats-creds --leaf`):
   * the agents' subjects cross its link both ways, nothing else (no event
   * subjects, no inboxes). The agents at the site keep their own users and
   * permissions, which the leaf server enforces itself.
   */
  async leafCreds(site: string, expiresMs = 0): Promise<string> {
    const kp = createUser();
    const perms = { pub: { allow: [NATS_AGENT_WILDCARD] }, sub: { allow: [NATS_AGENT_WILDCARD] } };
    const jwt = await encodeUser(`leaf ${site}`, kp, this.signer, perms, { ...opts, ...(expiresMs ? { exp: Math.floor(expiresMs / 1000) } : {}) });
    return new TextDecoder().decode(fmtCreds(jwt, kp));
  }

  /** The control plane's own NATS credentials (.creds text: a new user key and its JWT). */
  async controlPlaneCreds(): Promise<string> {
    const kp = createUser();
    // resp: it may answer each request it receives once (a NATS trigger's reply), without publish rights on _INBOX.>.
    const perms = { pub: { allow: [NATS_AGENT_WILDCARD, STATE_SUBJECTS, ...STORE_STREAM_SUBJECTS, ...JETSTREAM_PUBLISH] }, sub: { allow: ['>'] }, resp: { max: 1, ttl: ANSWER_WITHIN_NS } };
    const jwt = await encodeUser('drover-control-plane', kp, this.signer, perms, opts);
    return new TextDecoder().decode(fmtCreds(jwt, kp));
  }

  /**
   * Credentials for a system that publishes events for NATS triggers
   * (`drover server nats-creds`): publish on `subjects` only, subscribe to
   * its own inbox prefix `_INBOX.<name>.>` for the answers to its requests
   * (so one publisher cannot read another's); valid until `expiresMs` (0:
   * no expiry). Subjects and name are checked by the caller.
   */
  async publisherCreds(name: string, subjects: readonly string[], expiresMs = 0): Promise<string> {
    const kp = createUser();
    const perms = { pub: { allow: [...subjects] }, sub: { allow: [`${publisherInbox(name)}.>`] } };
    const jwt = await encodeUser(`publisher ${name}`, kp, this.signer, perms, { ...opts, ...(expiresMs ? { exp: Math.floor(expiresMs / 1000) } : {}) });
    return new TextDecoder().decode(fmtCreds(jwt, kp));
  }

  /**
   * An agent's NATS user JWT for the nkey it made (`userPublicKey`, U...):
   * its own two subjects only, valid until `expiresMs`.
   */
  async agentJwt(agent: string, userPublicKey: string, expiresMs: number): Promise<string> {
    let user: KeyPair;
    try {
      user = fromPublic(userPublicKey);
    } catch {
      throw new NatsKeyError(`"${userPublicKey.slice(0, 12)}…" is not a NATS public key`);
    }
    if (!user.getPublicKey().startsWith('U')) throw new NatsKeyError('the NATS key is not a user key (it must start with U)');
    const perms = { pub: { allow: [upSubject(agent)] }, sub: { allow: [downSubject(agent)] } };
    return encodeUser(`agent ${agent}`, user, this.signer, perms, { ...opts, exp: Math.floor(expiresMs / 1000) });
  }
}
