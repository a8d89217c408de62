/**
 * Bearer tokens on the HTTP port (/metrics, the /ws feed): checked with the
 * same Tokens as the gRPC access interceptor, refusals audited at the same
 * bounded rate per peer and slowed by the same FailureThrottle, so guessing
 * over HTTP is no cheaper than over gRPC.
 */
import { PeerRate } from '../log.js';
import type { AuditLog } from '../security/audit.js';
import type { FailureThrottle } from '../security/access.js';
import { roleAllows, TokenError, tokenId, type Tokens } from '../security/tokens.js';
import type { Role, TokenRecord } from '../store/store.js';

/** Refusals recorded per peer address and minute, as the interceptor does; past it they are counted in one record. */
const REFUSALS_AUDITED_PER_MINUTE = 60;

export type AuthResult =
  | { ok: true; record: TokenRecord }
  | { ok: false; code: 'UNAUTHENTICATED' | 'PERMISSION_DENIED'; message: string; hint: string };

export interface HttpAuthOptions {
  tokens: Tokens;
  throttle: FailureThrottle;
  audit?: AuditLog;
  /** Where the first admin token lives, for the hint of a request without one. */
  adminTokenFile: string;
  now: () => number;
}

/** The bearer token of an `Authorization` header; '' when there is none. */
export function bearer(header: string | undefined): string {
  return /^Bearer\s+(\S+)$/i.exec(header ?? '')?.[1] ?? '';
}

export class HttpAuth {
  private readonly refusals: PeerRate;

  constructor(private readonly o: HttpAuthOptions) {
    this.refusals = new PeerRate(REFUSALS_AUDITED_PER_MINUTE, o.now, (peer, n) =>
      o.audit?.record({ actor: { kind: 'anonymous', id: '' }, action: 'audit.refusals-suppressed', from: peer, result: 'ok', detail: { count: String(n) } }),
    );
  }

  /**
   * Checks `token` for `need`. A refusal is audited under `action` (e.g.
   * `HTTP/metrics`) and answered only after the peer's throttle delay.
   */
  async check(token: string, need: Role, peer: string, action: string, target = ''): Promise<AuthResult> {
    const verdict = this.verdict(token, need);
    if (verdict.ok) return verdict;
    const delay = this.o.throttle.delayMs(peer);
    this.o.throttle.failed(peer);
    this.refused(token, peer, action, verdict.code, verdict.code === 'PERMISSION_DENIED', target);
    if (delay) await new Promise((r) => setTimeout(r, delay));
    return verdict;
  }

  /** Records a refused call (as the interceptor does: a valid token always, anonymous ones at a bounded rate). */
  refused(token: string, peer: string, action: string, result: string, verified: boolean, target = ''): void {
    if (!this.o.audit) return;
    if (!verified && !this.refusals.allow(peer)) return;
    const id = tokenId(token);
    this.o.audit.record({ actor: { kind: id ? 'token' : 'anonymous', id }, action, target, from: peer, result });
  }

  private verdict(token: string, need: Role): AuthResult {
    if (!token) {
      return {
        ok: false,
        code: 'UNAUTHENTICATED',
        message: `this needs an API token with the ${need} role; none was sent`,
        hint: `send Authorization: Bearer <token> (the first admin token is in ${this.o.adminTokenFile}; more with \`drover token create --role ${need}\`)`,
      };
    }
    try {
      const record = this.o.tokens.check(token, 'api');
      if (!roleAllows(record.role as Role, need)) {
        return { ok: false, code: 'PERMISSION_DENIED', message: `this needs the ${need} role; token ${record.id} has ${record.role}`, hint: `use a token with the ${need} role (drover token create --role ${need})` };
      }
      this.o.tokens.use(record, false);
      return { ok: true, record };
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      return { ok: false, code: 'UNAUTHENTICATED', message: `refused: ${err.message}`, hint: 'check the token; an admin makes tokens with `drover token create --role ROLE`' };
    }
  }
}
