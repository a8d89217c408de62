/** AccessService (tokens, agent credentials) and AgentService.Enroll. */
import type * as grpc from '@grpc/grpc-js';
import { AGENT_NAME, LABEL_KEY, LABEL_VALUE } from '../../common/names.js';
import type { AccessServiceHandlers, AgentCredential, EnrollRequestOut, EnrollResponse, TokenInfo } from '../../proto/index.js';
import { ApiError, NotFoundError } from '../errors.js';
import { PeerLog, type Logger } from '../log.js';
import { EnrollError, type Credentials, type CredentialState } from '../security/credentials.js';
import type { FailureThrottle } from '../security/access.js';
import { peerAddress } from '../security/access.js';
import type { Pki } from '../security/pki.js';
import { NatsKeyError } from '../security/nats-auth.js';
import { DEFAULT_ENROLL_TTL_MS, ROLES, TOKEN_NAME, type Tokens } from '../security/tokens.js';
import type { CredentialRecord, Role, TokenRecord } from '../store/store.js';
import { toServiceError, unary } from './grpc-errors.js';

/** Longest lifetime an enrollment token may be given: it is meant to be short-lived. */
const MAX_ENROLL_TTL_MS = 30 * 86_400_000;

function toTokenInfo(t: TokenRecord): TokenInfo {
  return {
    id: t.id,
    kind: t.kind,
    role: t.role,
    description: t.description,
    name: t.name ?? '',
    createdMs: t.createdMs,
    expiresMs: t.expiresMs,
    uses: t.uses,
    used: t.used,
    labels: t.labels,
    namePattern: t.namePattern,
    revokedMs: t.revokedMs,
    lastUsedMs: t.lastUsedMs,
  };
}

function toCredential(c: CredentialRecord, state: CredentialState): AgentCredential {
  return {
    name: c.name,
    serial: c.serial,
    state,
    issuedMs: c.issuedMs,
    expiresMs: c.expiresMs,
    tokenId: c.tokenId,
    revokedMs: c.revokedMs,
    fingerprint: c.fingerprint,
    labels: c.labels,
    requestedMs: c.requestedMs,
  };
}

const invalid = (message: string, hint: string) => new ApiError('INVALID_INPUT', message, hint);

export interface AccessApiOptions {
  tokens: Tokens;
  credentials: Credentials;
  /** Cuts the agent off and applies onAgentLost to its steps. */
  revoked(name: string): void;
}

export function accessService(o: AccessApiOptions): AccessServiceHandlers {
  const { tokens, credentials } = o;
  return {
    CreateToken: unary(async (req) => {
      if (req.kind !== 'api' && req.kind !== 'enroll') throw invalid(`token kind "${req.kind}" is not api or enroll`, 'drover token create --role ROLE, or --enroll');
      if (req.ttlMs < 0 || !Number.isSafeInteger(req.ttlMs)) throw invalid(`ttl ${req.ttlMs} ms is not a positive duration`, 'for example --ttl 1h');
      if (req.kind === 'api') {
        if (!ROLES.includes(req.role as Role)) throw invalid(`role "${req.role}" is not one of ${ROLES.join(', ')}`, 'drover token create --role viewer|operator|admin');
        if (req.uses || req.namePattern || Object.keys(req.labels).length) throw invalid('--uses, --label and --name-pattern are for enrollment tokens', 'add --enroll, or drop them');
        if (req.name) checkTokenName(tokens, req.name);
      } else {
        if (req.name) throw invalid('an enrollment token has no name', 'drop --name (agents are named by --name of `drover agent`), or drop --enroll');
        if (req.role) throw invalid('an enrollment token has no role', 'drop --role, or drop --enroll to make an API token');
        if (req.ttlMs > MAX_ENROLL_TTL_MS) throw invalid(`an enrollment token may live at most 30 days, not ${Math.round(req.ttlMs / 3_600_000)} h`, 'use a shorter --ttl');
        if (req.uses < 0) throw invalid(`--uses ${req.uses} is not a positive number`, 'for example --uses 1');
        if (req.namePattern && !/^[A-Za-z0-9._*?-]{1,63}$/.test(req.namePattern)) {
          throw invalid(`--name-pattern "${req.namePattern}" is not a name glob`, 'letters, digits, ".", "-", "_", with * and ?: for example web-*');
        }
        for (const [k, v] of Object.entries(req.labels)) {
          if (!LABEL_KEY.test(k) || !LABEL_VALUE.test(v)) throw invalid(`label ${k}=${v} is not valid`, 'key=value with letters, digits, ".", "-", "_"');
        }
      }
      const { token, record } = tokens.create({
        kind: req.kind,
        role: req.kind === 'api' ? (req.role as Role) : undefined,
        ttlMs: req.ttlMs || (req.kind === 'enroll' ? DEFAULT_ENROLL_TTL_MS : 0),
        uses: req.uses,
        labels: req.labels,
        namePattern: req.namePattern,
        description: req.description.slice(0, 200),
        name: req.kind === 'api' ? req.name : '',
      });
      await tokens.durable('the token may not have been kept: make another one');
      return { token, info: toTokenInfo(record) };
    }),
    ListTokens: unary(() => ({ tokens: tokens.list().map(toTokenInfo) })),
    RevokeToken: unary(async (req) => {
      const rec = tokens.revoke(req.id);
      if (!rec) throw new NotFoundError('TOKEN_NOT_FOUND', `no token with id "${req.id}"`, 'list tokens with `drover token list`');
      await tokens.durable('the token is refused from now on, but a restart before the store writes again would accept it: revoke it again');
      return toTokenInfo(rec);
    }),
    ListAgentCredentials: unary(() => ({ credentials: credentials.list().map((c) => toCredential(c, c.shownState)) })),
    ApproveAgent: unary(async (req) => {
      const rec = await credentials.approve(req.name);
      if (!rec) throw new NotFoundError('AGENT_NOT_FOUND', `no enrollment of "${req.name}" is waiting for approval`, 'see `drover agent list-credentials`');
      return toCredential(rec, 'active');
    }),
    RevokeAgent: unary((req) => {
      if (!AGENT_NAME.test(req.name)) throw invalid(`"${req.name}" is not an agent name`, 'see `drover agent list-credentials`');
      const revoked = credentials.revoke(req.name);
      if (!revoked.length) throw new NotFoundError('AGENT_NOT_FOUND', `agent "${req.name}" has no certificate or enrollment to revoke`, 'see `drover agent list-credentials`');
      o.revoked(req.name);
      return toCredential(revoked[revoked.length - 1], 'revoked');
    }),
    // The interceptor has already checked the token; this reads it again to describe it.
    WhoAmI(call, callback) {
      const header = call.metadata.get('authorization')[0];
      const token = typeof header === 'string' ? header.replace(/^Bearer\s+/i, '') : '';
      try {
        const rec = tokens.check(token, 'api');
        callback(null, { tokenId: rec.id, role: rec.role, description: rec.description, expiresMs: rec.expiresMs, name: rec.name ?? '' });
      } catch (err) {
        callback(toServiceError(err) as grpc.ServiceError);
      }
    },
  };
}

/** A new token's name: well-formed, not a role (approvers would not know which is meant), not borne by another live token. */
function checkTokenName(tokens: Tokens, name: string) {
  if (!TOKEN_NAME.test(name)) throw invalid(`token name "${name}" is not valid`, 'letters, digits, ".", "_", "@" and "-", starting with a letter or digit, at most 63: for example alice');
  if ((ROLES as readonly string[]).includes(name)) throw invalid(`token name "${name}" is a role's name`, 'approval steps would take it for the role; choose another name');
  const other = tokens.byName(name);
  if (other) throw invalid(`token ${other.id} is already named "${name}"`, `choose another name, or revoke that token first (drover token revoke ${other.id})`);
}

export interface EnrollOptions {
  credentials: Credentials;
  /** The NATS user JWT of a credential ('' for an agent that does not link over NATS). */
  natsJwt(credential: CredentialRecord): Promise<string>;
  pki: Pki;
  throttle: FailureThrottle;
  log: Logger;
}

/** AgentService.Enroll: no credential but the token in the request; failures count against the peer. */
export function enrollHandler(o: EnrollOptions): grpc.handleUnaryCall<EnrollRequestOut, EnrollResponse> {
  const peerLog = new PeerLog(o.log);
  return (call, callback) => {
    const peer = peerAddress(call.getPeer());
    const req = call.request;
    const wait = o.throttle.delayMs(peer);
    setTimeout(() => {
      o.credentials.enroll({ token: req.token, name: req.name, csrPem: req.csrPem, natsPublicKey: req.natsPublicKey }).then(
        (res) => {
          if (res.status === 'pending') {
            o.log.info({ agent: req.name, peer, token: res.record.tokenId }, 'enrollment waiting for approval (drover agent approve)');
            return callback(null, { status: 'ENROLL_STATUS_PENDING', caPem: o.pki.caPem, message: `waiting for an admin: drover agent approve ${req.name}` });
          }
          o.log.info({ agent: req.name, peer, serial: res.record.serial, token: res.record.tokenId }, 'agent enrolled');
          return o.natsJwt(res.record).then((natsJwt) =>
            callback(null, { status: 'ENROLL_STATUS_ISSUED', certificatePem: res.certPem, caPem: o.pki.caPem, controlKeyPem: o.pki.controlPublicKeyPem, natsJwt }),
          );
        },
        (e: unknown) => {
          let err = e;
          o.throttle.failed(peer);
          if (err instanceof NatsKeyError) err = new EnrollError('BAD_REQUEST', err.message);
          if (!(err instanceof EnrollError)) return callback(toServiceError(err) as grpc.ServiceError);
          peerLog.warn(peer, { agent: req.name, peer, reason: err.code }, `enrollment refused: ${err.message}`);
          const code = err.code === 'BAD_TOKEN' ? 'UNAUTHENTICATED' : err.code === 'BAD_REQUEST' ? 'INVALID_INPUT' : 'PERMISSION_DENIED';
          callback(toServiceError(new ApiError(code, err.message, err.code === 'NAME_TAKEN' ? `drover agent revoke ${req.name}` : 'drover token create --enroll')) as grpc.ServiceError);
        },
      );
    }, wait);
  };
}
