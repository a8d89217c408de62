import type { AgentCredentialOut, TokenInfoOut } from '../proto/index.js';
import type { Connection } from './connection.js';

/** A role of an API token; each includes the ones before it. */
export type Role = 'viewer' | 'operator' | 'admin';

/** A token as listed (its secret is never shown again after creation). */
export interface TokenInfo {
  id: string;
  kind: 'api' | 'enroll';
  /** API tokens only. */
  role: Role | '';
  description: string;
  /** API tokens: its holder's name, as approval steps name approvers ('' for none). */
  name: string;
  createdAt: Date;
  /** Undefined: never expires. */
  expiresAt?: Date;
  /** Enrollment tokens: agents it may enroll (0: any number until it expires). */
  uses: number;
  used: number;
  /** Enrollment tokens: labels pinned on every agent enrolled with it. */
  labels: Record<string, string>;
  /** Enrollment tokens: a glob the agent name must match ('' = any). */
  namePattern: string;
  revokedAt?: Date;
}

/** What `createToken` takes. */
export interface CreateTokenOptions {
  /** Default: one hour for enrollment tokens, no expiry for API tokens. */
  ttlMs?: number;
  description?: string;
  /** API tokens: its holder's name (e.g. "alice"), unique among tokens not revoked; approval steps may name it as an approver. */
  name?: string;
}

/** What `createEnrollToken` takes. */
export interface CreateEnrollTokenOptions extends CreateTokenOptions {
  /** How many agents may enroll with it; 0 (default): any number until it expires. */
  uses?: number;
  labels?: Record<string, string>;
  /** A glob such as `web-*` that the agent's name must match. */
  namePattern?: string;
}

/** An agent certificate, or an enrollment waiting for approval. */
export interface AgentCredential {
  name: string;
  /** Certificate serial (hex); '' while pending. */
  serial: string;
  state: 'pending' | 'active' | 'revoked' | 'expired';
  requestedAt: Date;
  issuedAt?: Date;
  expiresAt?: Date;
  revokedAt?: Date;
  tokenId: string;
  /** SHA-256 of the agent's public key (hex). */
  fingerprint: string;
  labels: Record<string, string>;
}

const date = (ms: number) => (ms ? new Date(ms) : undefined);

function toTokenInfo(t: TokenInfoOut): TokenInfo {
  return {
    id: t.id,
    kind: t.kind as TokenInfo['kind'],
    role: t.role as TokenInfo['role'],
    description: t.description,
    name: t.name,
    createdAt: new Date(t.createdMs),
    expiresAt: date(t.expiresMs),
    uses: t.uses,
    used: t.used,
    labels: { ...t.labels },
    namePattern: t.namePattern,
    revokedAt: date(t.revokedMs),
  };
}

function toCredential(c: AgentCredentialOut): AgentCredential {
  return {
    name: c.name,
    serial: c.serial,
    state: c.state as AgentCredential['state'],
    requestedAt: new Date(c.requestedMs),
    issuedAt: date(c.issuedMs),
    expiresAt: date(c.expiresMs),
    revokedAt: date(c.revokedMs),
    tokenId: c.tokenId,
    fingerprint: c.fingerprint,
    labels: { ...c.labels },
  };
}

/** Tokens and agent credentials (every call but `whoami` needs the admin role). */
export class AccessApi {
  /** @internal */
  constructor(private readonly conn: Connection) {}

  /** A new API token with `role`; the returned `token` is the only copy of its secret. */
  async createToken(role: Role, options: CreateTokenOptions = {}): Promise<{ token: string; info: TokenInfo }> {
    const res = await this.conn.unary<{ token: string; info: TokenInfoOut | null }>((cb) =>
      this.conn.access.createToken({ kind: 'api', role, ttlMs: options.ttlMs ?? 0, description: options.description ?? '', name: options.name ?? '' }, cb),
    );
    return { token: res.token, info: toTokenInfo(res.info!) };
  }

  /** A new enrollment token (it carries the CA's hash, so agents can check the server). */
  async createEnrollToken(options: CreateEnrollTokenOptions = {}): Promise<{ token: string; info: TokenInfo }> {
    const res = await this.conn.unary<{ token: string; info: TokenInfoOut | null }>((cb) =>
      this.conn.access.createToken(
        {
          kind: 'enroll',
          ttlMs: options.ttlMs ?? 0,
          uses: options.uses ?? 0,
          labels: options.labels ?? {},
          namePattern: options.namePattern ?? '',
          description: options.description ?? '',
        },
        cb,
      ),
    );
    return { token: res.token, info: toTokenInfo(res.info!) };
  }

  async listTokens(): Promise<TokenInfo[]> {
    const res = await this.conn.unary<{ tokens: TokenInfoOut[] }>((cb) => this.conn.access.listTokens({}, cb));
    return res.tokens.map(toTokenInfo);
  }

  /** Revokes a token by id: it is refused from now on. Rejects with TokenNotFoundError. */
  async revokeToken(id: string): Promise<TokenInfo> {
    return toTokenInfo(await this.conn.unary<TokenInfoOut>((cb) => this.conn.access.revokeToken({ id }, cb)));
  }

  async listAgentCredentials(): Promise<AgentCredential[]> {
    const res = await this.conn.unary<{ credentials: AgentCredentialOut[] }>((cb) => this.conn.access.listAgentCredentials({}, cb));
    return res.credentials.map(toCredential);
  }

  /** Issues the certificate of an enrollment waiting for approval. */
  async approveAgent(name: string): Promise<AgentCredential> {
    return toCredential(await this.conn.unary<AgentCredentialOut>((cb) => this.conn.access.approveAgent({ name }, cb)));
  }

  /** Cuts the agent off at once and refuses its certificates; its steps follow onAgentLost. */
  async revokeAgent(name: string): Promise<AgentCredential> {
    return toCredential(await this.conn.unary<AgentCredentialOut>((cb) => this.conn.access.revokeAgent({ name }, cb)));
  }

  /** The caller's own token: id, role and name. */
  async whoami(): Promise<{ tokenId: string; role: Role; description: string; name: string; expiresAt?: Date }> {
    const r = await this.conn.unary<{ tokenId: string; role: string; description: string; expiresMs: number; name: string }>((cb) => this.conn.access.whoAmI({}, cb));
    return { tokenId: r.tokenId, role: r.role as Role, description: r.description, name: r.name, expiresAt: date(r.expiresMs) };
  }
}
