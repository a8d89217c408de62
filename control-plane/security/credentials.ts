/**
 * Agent identities: enrollment (token + CSR -> client certificate), optional
 * approval, renewal over the link, revocation, and the check of a presented
 * certificate against the store's records (the serial deny-list).
 *
 * A name with a live certificate cannot be enrolled again: whoever holds an
 * enrollment token could otherwise take over an existing agent. Reinstalling
 * a host under its old name is `drover agent revoke NAME` first.
 */
import { AGENT_NAME } from '../../common/names.js';
import type { CredentialRecord, Store } from '../store/store.js';
import { CertificateError, csrFingerprint, type AgentCertificate, type Pki } from './pki.js';
import { globToRegExp, TokenError, type Tokens } from './tokens.js';

/** Enrollment refused; the message says why and what to do. */
export class EnrollError extends Error {
  override name = 'EnrollError';
  constructor(
    readonly code: 'BAD_TOKEN' | 'BAD_REQUEST' | 'NAME_TAKEN' | 'REVOKED',
    message: string,
  ) {
    super(message);
  }
}

export type EnrollResult = { status: 'issued'; certPem: string; record: CredentialRecord } | { status: 'pending'; record: CredentialRecord };

export interface CredentialsOptions {
  store: Store;
  pki: Pki;
  tokens: Tokens;
  now: () => number;
  /** Lifetime of agent certificates. */
  certTtlMs: number;
  /** Enrollments wait for `drover agent approve NAME`. */
  approve: boolean;
}

export type CredentialState = 'pending' | 'active' | 'revoked' | 'expired';

export class Credentials {
  /** Record ids per agent name (the store is keyed by serial), so a lookup by name is not a scan of the fleet. */
  private readonly byName = new Map<string, Set<string>>();

  constructor(private readonly o: CredentialsOptions) {
    for (const c of o.store.listCredentials()) this.index(c);
  }

  private index(c: CredentialRecord) {
    let ids = this.byName.get(c.name);
    if (!ids) this.byName.set(c.name, (ids = new Set()));
    ids.add(c.id);
  }

  private put(c: CredentialRecord) {
    this.o.store.putCredential(c);
    this.index(c);
  }

  private remove(c: CredentialRecord) {
    this.o.store.deleteCredential(c.id);
    this.byName.get(c.name)?.delete(c.id);
  }

  /** Checks a certificate presented over TLS; throws CertificateError naming the problem. */
  authenticate(der: Buffer): AgentCertificate {
    const cert = this.o.pki.verifyAgentCertificate(der);
    const rec = this.o.store.getCredential(cert.serial);
    if (!rec || rec.name !== cert.name) {
      throw new CertificateError(`certificate ${cert.serial} of agent "${cert.name}" is not on this control plane's record (its data dir was replaced?): enroll the agent again`);
    }
    if (rec.state === 'revoked') {
      throw new CertificateError(`certificate ${cert.serial} of agent "${cert.name}" was revoked at ${new Date(rec.revokedMs).toISOString()}`);
    }
    return cert;
  }

  /** Labels pinned on an agent by the token it enrolled with. */
  pinnedLabels(serial: string): Record<string, string> {
    return this.o.store.getCredential(serial)?.labels ?? {};
  }

  /** Whether `name` holds a certificate that is neither revoked nor expired (NATS agents carry none on the link). */
  hasActive(name: string): boolean {
    return this.forName(name).some((c) => this.stateOf(c) === 'active');
  }

  /** The newest active certificate of `name`: for agents known by name only (NATS). */
  newestActive(name: string): CredentialRecord | undefined {
    return this.forName(name).filter((c) => this.stateOf(c) === 'active').sort((a, b) => b.issuedMs - a.issuedMs)[0];
  }

  async enroll(req: { token: string; name: string; csrPem: string; natsPublicKey?: string }): Promise<EnrollResult> {
    const { store, tokens, pki, now } = this.o;
    if (!AGENT_NAME.test(req.name)) {
      throw new EnrollError('BAD_REQUEST', `agent name "${req.name}" is not valid: use letters, digits, ".", "-", "_" (at most 63), starting with a letter or digit`);
    }
    let fingerprint: string;
    try {
      fingerprint = csrFingerprint(req.csrPem, req.name);
    } catch (err) {
      throw new EnrollError('BAD_REQUEST', (err as Error).message);
    }
    const pendingId = `pending:${req.name}`;
    const waiting = store.getCredential(pendingId);
    const issued = this.forName(req.name).find((c) => c.state === 'active' && c.fingerprint === fingerprint);

    // A poll of an enrollment already accepted: same name, same key, same token (even if it expired since).
    const earlier = waiting?.fingerprint === fingerprint ? waiting : issued;
    if (earlier) {
      const rec = store.getToken(earlier.tokenId);
      if (rec && !rec.revokedMs && tokens.matches(req.token, rec)) {
        if (earlier.state === 'pending') return { status: 'pending', record: earlier };
        if (earlier.certPem) return { status: 'issued', certPem: earlier.certPem, record: earlier };
      }
    }

    let token;
    try {
      token = tokens.check(req.token, 'enroll');
    } catch (err) {
      if (err instanceof TokenError) throw new EnrollError('BAD_TOKEN', `enrollment refused: ${err.message}; ask an admin for a new one (drover token create --enroll)`);
      throw err;
    }
    if (token.namePattern && !globToRegExp(token.namePattern).test(req.name)) {
      throw new EnrollError('BAD_TOKEN', `enrollment refused: token ${token.id} is only for agents named like "${token.namePattern}", not "${req.name}"`);
    }
    const live = this.forName(req.name).find((c) => this.stateOf(c) === 'active');
    if (live) {
      throw new EnrollError(
        'NAME_TAKEN',
        `agent "${req.name}" is already enrolled (certificate ${live.serial}, valid until ${new Date(live.expiresMs).toISOString()}); if this host replaces it, revoke the old identity first: drover agent revoke ${req.name}`,
      );
    }
    if (waiting) {
      throw new EnrollError('NAME_TAKEN', `an enrollment of "${req.name}" with another key is already waiting for approval: approve or revoke it first (drover agent approve|revoke ${req.name})`);
    }
    tokens.use(token, true);
    const base: CredentialRecord = {
      id: pendingId,
      name: req.name,
      serial: '',
      state: 'pending',
      requestedMs: now(),
      issuedMs: 0,
      expiresMs: 0,
      revokedMs: 0,
      tokenId: token.id,
      fingerprint,
      labels: { ...token.labels },
      csrPem: req.csrPem,
      certPem: '',
      natsPublicKey: req.natsPublicKey ?? '',
    };
    if (this.o.approve) {
      this.put(base);
      return { status: 'pending', record: base };
    }
    const rec = await this.issue(base);
    return { status: 'issued', certPem: rec.certPem, record: rec };
  }

  /** Issues the certificate of a pending enrollment. */
  async approve(name: string): Promise<CredentialRecord | undefined> {
    const pending = this.o.store.getCredential(`pending:${name}`);
    if (!pending) return undefined;
    const rec = await this.issue(pending);
    this.remove(pending);
    return rec;
  }

  /** A new certificate for an enrolled agent (its name from the certificate it connected with). */
  async renew(serial: string, csrPem: string): Promise<CredentialRecord> {
    const old = this.o.store.getCredential(serial);
    if (!old || old.state !== 'active') throw new CertificateError(`certificate ${serial} is not active; it cannot be renewed`);
    return this.issue({ ...old, csrPem, fingerprint: csrFingerprint(csrPem, old.name), requestedMs: this.o.now() });
  }

  /** Revokes every certificate (and pending enrollment) of `name`; the records revoked. */
  revoke(name: string): CredentialRecord[] {
    const out: CredentialRecord[] = [];
    for (const c of this.forName(name)) {
      if (c.state === 'revoked') continue;
      c.state = 'revoked';
      c.revokedMs = this.o.now();
      this.put(c);
      out.push(c);
    }
    return out;
  }

  list(): (CredentialRecord & { shownState: CredentialState })[] {
    return this.o.store
      .listCredentials()
      .map((c) => ({ ...c, shownState: this.stateOf(c) }))
      .sort((a, b) => a.name.localeCompare(b.name) || a.requestedMs - b.requestedMs);
  }

  stateOf(c: CredentialRecord): CredentialState {
    if (c.state === 'active' && c.expiresMs <= this.o.now()) return 'expired';
    return c.state;
  }

  private forName(name: string): CredentialRecord[] {
    const out: CredentialRecord[] = [];
    for (const id of this.byName.get(name) ?? []) {
      const c = this.o.store.getCredential(id);
      if (c) out.push(c);
    }
    return out;
  }

  private async issue(from: CredentialRecord): Promise<CredentialRecord> {
    let cert;
    try {
      cert = await this.o.pki.issueAgentCertificate(from.csrPem, from.name, this.o.certTtlMs);
    } catch (err) {
      if (err instanceof CertificateError) throw new EnrollError('BAD_REQUEST', err.message);
      throw err;
    }
    const rec: CredentialRecord = {
      ...from,
      id: cert.serial,
      serial: cert.serial,
      state: 'active',
      issuedMs: this.o.now(),
      expiresMs: cert.notAfterMs,
      fingerprint: cert.fingerprint,
      csrPem: '',
      certPem: cert.certPem,
    };
    this.put(rec);
    return rec;
  }
}
