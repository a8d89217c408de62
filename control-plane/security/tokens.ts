/**
 * API tokens (with a role) and enrollment tokens (traded once for an agent
 * certificate). A token is `<prefix>.<id>.<secret>`; enrollment tokens carry
 * the CA's SHA-256 between prefix and id, so a new agent can check the server
 * before it trusts it. Only SHA-256(secret) is stored (the secret is 256
 * random bits, so a slow hash would add nothing) and compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { flushOrUndo, requireWritable } from '../store-guard.js';
import type { Role, Store, TokenRecord } from '../store/store.js';

export const API_PREFIX = 'drover-api';
export const ENROLL_PREFIX = 'drover-enroll';

/** Enrollment tokens are short-lived unless told otherwise. */
export const DEFAULT_ENROLL_TTL_MS = 60 * 60_000;

export const ROLES: readonly Role[] = ['viewer', 'operator', 'admin'];

/** Whether `have` includes everything `need` may do. */
export function roleAllows(have: Role, need: Role): boolean {
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}

/** A token that is not accepted; `reason` is for the caller. */
export class TokenError extends Error {
  override name = 'TokenError';
  constructor(
    readonly reason: 'missing' | 'malformed' | 'unknown' | 'expired' | 'revoked' | 'used-up' | 'wrong-kind' | 'name',
    message: string,
  ) {
    super(message);
  }
}

const hash = (secret: string) => createHash('sha256').update(secret).digest('hex');

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The id part of a token (never its secret), for logs and the audit trail; '' when it is of neither form. */
export function tokenId(token: string): string {
  const id = parse(token)?.id ?? '';
  return /^[A-Za-z0-9_-]{1,64}$/.test(id) ? id : '';
}

/** Splits a token into id and secret; undefined when it is not of either form. */
function parse(token: string): { kind: 'api' | 'enroll'; id: string; secret: string } | undefined {
  const parts = token.trim().split('.');
  if (parts[0] === API_PREFIX && parts.length === 3) return { kind: 'api', id: parts[1], secret: parts[2] };
  if (parts[0] === ENROLL_PREFIX && parts.length === 4) return { kind: 'enroll', id: parts[2], secret: parts[3] };
  return undefined;
}

/** `web-*` style globs: `*` any run, `?` one character; everything else literal. */
export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

export interface NewToken {
  kind: 'api' | 'enroll';
  role?: Role;
  ttlMs?: number;
  uses?: number;
  labels?: Record<string, string>;
  namePattern?: string;
  description?: string;
  /** API tokens: its holder's name, unique among tokens not revoked. */
  name?: string;
}

/** Token names: like approvers in workflows (common/workflow/compiler/schema.ts APPROVER_PATTERN), and never a role's name. */
export const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$/;

export class Tokens {
  constructor(
    private readonly store: Store,
    private readonly caHash: string,
    private readonly now: () => number,
  ) {}

  /**
   * Resolves once tokens made or revoked so far are durable (UNAVAILABLE if
   * the store cannot write): an API call answers only then, so a token it
   * handed out survives a crash right after (the store writes a few ms later).
   */
  durable(outcome: string): Promise<void> {
    return flushOrUndo(this.store, outcome);
  }

  /** Makes a token; the returned string is the only copy of its secret. */
  create(t: NewToken): { token: string; record: TokenRecord } {
    // A token its holder could lose at the next restart is no token: none is made while the store cannot write.
    requireWritable(this.store, 'no token was created');
    const id = randomBytes(6).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const ttl = t.ttlMs ?? (t.kind === 'enroll' ? DEFAULT_ENROLL_TTL_MS : 0);
    const record: TokenRecord = {
      id,
      kind: t.kind,
      role: t.kind === 'api' ? (t.role ?? 'viewer') : '',
      description: t.description ?? '',
      ...(t.name ? { name: t.name } : {}),
      secretHash: hash(secret),
      createdMs: this.now(),
      expiresMs: ttl > 0 ? this.now() + ttl : 0,
      uses: t.kind === 'enroll' ? (t.uses ?? 0) : 0,
      used: 0,
      labels: t.kind === 'enroll' ? { ...(t.labels ?? {}) } : {},
      namePattern: t.kind === 'enroll' ? (t.namePattern ?? '') : '',
      revokedMs: 0,
      lastUsedMs: 0,
    };
    this.store.putToken(record);
    const token = t.kind === 'api' ? `${API_PREFIX}.${id}.${secret}` : `${ENROLL_PREFIX}.${this.caHash}.${id}.${secret}`;
    return { token, record };
  }

  /** The record of a valid, unexpired, unrevoked token of `kind`; throws TokenError otherwise. */
  check(token: string, kind: 'api' | 'enroll'): TokenRecord {
    if (!token) throw new TokenError('missing', 'no token given');
    const p = parse(token);
    if (!p) {
      throw new TokenError('malformed', `that is not a drover ${kind === 'api' ? 'API' : 'enrollment'} token (it should start with "${kind === 'api' ? API_PREFIX : ENROLL_PREFIX}.")`);
    }
    if (p.kind !== kind) {
      throw new TokenError('wrong-kind', kind === 'api' ? 'that is an enrollment token; API calls need an API token (drover token create --role ...)' : 'that is an API token; agents enroll with an enrollment token (drover token create --enroll)');
    }
    const rec = this.store.getToken(p.id);
    // Hash and compare even for an unknown id, so timing tells nothing about which ids exist.
    const ok = same(hash(p.secret), rec?.secretHash ?? '0'.repeat(64));
    if (!rec || !ok || rec.kind !== kind) throw new TokenError('unknown', 'the token is not known to this control plane (wrong, or from another one)');
    if (rec.revokedMs) throw new TokenError('revoked', `token ${rec.id} was revoked at ${new Date(rec.revokedMs).toISOString()}`);
    if (rec.expiresMs && this.now() >= rec.expiresMs) throw new TokenError('expired', `token ${rec.id} expired at ${new Date(rec.expiresMs).toISOString()}`);
    if (rec.kind === 'enroll' && rec.uses > 0 && rec.used >= rec.uses) {
      throw new TokenError('used-up', `enrollment token ${rec.id} was for ${rec.uses} agent${rec.uses === 1 ? '' : 's'} and is used up`);
    }
    return rec;
  }

  /** Whether `token` is the token of `rec` (whatever its expiry, uses or revocation). */
  matches(token: string, rec: TokenRecord): boolean {
    const p = parse(token);
    return !!p && p.id === rec.id && same(hash(p.secret), rec.secretHash);
  }

  /** Records a use (last-used time; for enrollment tokens, one more agent enrolled). */
  use(rec: TokenRecord, countUse: boolean): void {
    rec.lastUsedMs = this.now();
    if (countUse) rec.used++;
    // lastUsedMs alone is not worth a write per API call; a counted use is.
    if (countUse) this.store.putToken(rec);
  }

  /** The token not revoked that bears `name`, if any. */
  byName(name: string): TokenRecord | undefined {
    return this.store.listTokens().find((t) => t.name === name && !t.revokedMs);
  }

  list(): TokenRecord[] {
    return this.store.listTokens().sort((a, b) => a.createdMs - b.createdMs);
  }

  revoke(id: string): TokenRecord | undefined {
    const rec = this.store.getToken(id);
    if (!rec) return undefined;
    if (!rec.revokedMs) {
      rec.revokedMs = this.now();
      this.store.putToken(rec);
    }
    return rec;
  }
}
