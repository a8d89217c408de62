/**
 * NATS decentralized JWT auth for the agent link (docs/security.md, docs/nats.md).
 *
 * The control plane is the NATS operator of its fleet: on first use it makes
 * an operator, a system account and a `drover` account (nkey seeds in the
 * data dir, 0600), and signs user credentials under the account:
 *
 * - itself: publish and subscribe on `drover.v1.agent.>`;
 * - each agent, at enrollment: publish only on `drover.v1.agent.<name>.up`,
 *   subscribe only to `drover.v1.agent.<name>.down`.
 *
 * `drover server nats-config` prints the nats-server configuration (operator,
 * system account, MEMORY resolver with both accounts preloaded) that makes
 * nats-server enforce exactly that. An agent's NATS user cannot read another
 * agent's work or speak for it, and cannot publish on any `.down` subject.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Algorithms, encodeAccount, encodeOperator, encodeUser, fmtCreds } from '@nats-io/jwt';
import { createAccount, createOperator, createUser, fromSeed, type KeyPair } from '@nats-io/nkeys';
import { writeSecretFile } from '../../common/secret-file.js';
import { downSubject, NATS_AGENT_WILDCARD, upSubject } from '../../proto/nats.js';

const opts = { algorithm: Algorithms.v2 };
/** Accounts without limits of their own (-1: unlimited); the agents' confinement is in their user permissions. */
const UNLIMITED = { limits: { conn: -1, subs: -1, payload: -1, data: -1, leaf: -1, imports: -1, exports: -1, wildcards: true } };

function seedKey(file: string, make: () => KeyPair): KeyPair {
  if (existsSync(file)) return fromSeed(Buffer.from(readFileSync(file, 'utf8').trim()));
  const kp = make();
  writeSecretFile(file, `${new TextDecoder().decode(kp.getSeed())}\n`);
  return kp;
}

export class NatsAuth {
  private constructor(
    private readonly operator: KeyPair,
    private readonly system: KeyPair,
    private readonly account: KeyPair,
  ) {}

  /** Loads the keys from the data dir, making whatever is missing. */
  static open(dataDir: string): NatsAuth {
    return new NatsAuth(
      seedKey(join(dataDir, 'nats-operator.nk'), createOperator),
      seedKey(join(dataDir, 'nats-system-account.nk'), createAccount),
      seedKey(join(dataDir, 'nats-account.nk'), createAccount),
    );
  }

  /** The nats-server configuration that enforces the agents' permissions (include it, or run with it). */
  async serverConfig(): Promise<string> {
    const sysPub = this.system.getPublicKey();
    const accPub = this.account.getPublicKey();
    const operatorJwt = await encodeOperator('drover', this.operator, { system_account: sysPub }, opts);
    const sysJwt = await encodeAccount('SYS', this.system, UNLIMITED, { ...opts, signer: this.operator });
    const accJwt = await encodeAccount('drover', this.account, UNLIMITED, { ...opts, signer: this.operator });
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
      '',
    ].join('\n');
  }

  /** The control plane's own NATS credentials (.creds text). */
  async controlPlaneCreds(): Promise<string> {
    return this.user('drover-control-plane', { pub: { allow: [NATS_AGENT_WILDCARD] }, sub: { allow: [NATS_AGENT_WILDCARD] } });
  }

  /** An agent's NATS credentials: its own two subjects only; valid until `expiresMs`. */
  async agentCreds(agent: string, expiresMs: number): Promise<string> {
    return this.user(`agent ${agent}`, { pub: { allow: [upSubject(agent)] }, sub: { allow: [downSubject(agent)] } }, expiresMs);
  }

  private async user(name: string, perms: { pub: { allow: string[] }; sub: { allow: string[] } }, expiresMs = 0): Promise<string> {
    const kp = createUser();
    const jwt = await encodeUser(name, kp, this.account, perms, { ...opts, ...(expiresMs ? { exp: Math.floor(expiresMs / 1000) } : {}) });
    return new TextDecoder().decode(fmtCreds(jwt, kp));
  }
}
