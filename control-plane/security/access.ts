/**
 * Who may call what: one allow-list from every RPC to what it needs, checked
 * by one gRPC server interceptor before any handler runs. A method without a
 * rule is refused (and a unit test fails on it, see test/unit/access.test.ts).
 *
 * - a role (`viewer` < `operator` < `admin`): a bearer API token in the
 *   `authorization` metadata;
 * - `agent`: a client certificate (AgentService.Connect). The handler checks
 *   it (this CA, not revoked, not expired) once, as it takes the agent's
 *   name from it, the way Enroll checks the token in its request;
 * - `enroll`: no credential; the enrollment token travels in the request.
 *
 * Repeated failures from one peer address are answered more and more slowly
 * (bounded in time and in memory), so guessing is not worth it.
 */
import * as grpc from '@grpc/grpc-js';
import type { AuthContext } from '@grpc/grpc-js/build/src/auth-context.js';
import type { PartialStatusObject } from '@grpc/grpc-js/build/src/call-interface.js';
import { decodeMessage, encodeMessage, type ErrorDetailOut } from '../../proto/index.js';
import { checkMessage, requestTypes } from '../../proto/limits.js';
import type { Role } from '../store/store.js';
import { PeerRate } from '../log.js';
import type { AuditEvent, AuditLog } from './audit.js';
import { roleAllows, TokenError, tokenId, type Tokens } from './tokens.js';

export type Rule = Role | 'agent' | 'enroll';

/** Every RPC of the contract and what it needs. */
export const RPC_RULES: Record<string, Rule> = {
  '/drover.v1.AgentService/Connect': 'agent',
  '/drover.v1.AgentService/Enroll': 'enroll',
  '/drover.v1.FleetService/ListAgents': 'viewer',
  '/drover.v1.FleetService/GetAgent': 'viewer',
  '/drover.v1.FleetService/WatchAgents': 'viewer',
  '/drover.v1.FleetService/DrainAgent': 'operator',
  '/drover.v1.RunService/SubmitRun': 'operator',
  '/drover.v1.RunService/GetRun': 'viewer',
  '/drover.v1.RunService/ListRuns': 'viewer',
  '/drover.v1.RunService/WatchRun': 'viewer',
  '/drover.v1.RunService/CancelRun': 'operator',
  '/drover.v1.RunService/GetLogs': 'viewer',
  '/drover.v1.RunService/WatchRuns': 'viewer',
  // Any role may call it; the handler checks the step's approvers (a role the caller holds, or its token's name).
  '/drover.v1.RunService/DecideApproval': 'viewer',
  '/drover.v1.RunService/RerunRun': 'operator',
  '/drover.v1.TriggerService/ListSchedules': 'viewer',
  '/drover.v1.TriggerService/PauseSchedule': 'operator',
  '/drover.v1.TriggerService/ResumeSchedule': 'operator',
  '/drover.v1.WorkflowService/ValidateWorkflow': 'viewer',
  '/drover.v1.WorkflowService/PlanRun': 'viewer',
  '/drover.v1.WorkflowService/ApplyWorkflow': 'admin',
  '/drover.v1.WorkflowService/ListWorkflows': 'viewer',
  '/drover.v1.WorkflowService/GetWorkflow': 'viewer',
  '/drover.v1.DeviceService/AddDevice': 'admin',
  '/drover.v1.DeviceService/ListDevices': 'viewer',
  '/drover.v1.DeviceService/GetDevice': 'viewer',
  '/drover.v1.DeviceService/RemoveDevice': 'admin',
  '/drover.v1.AccessService/CreateToken': 'admin',
  '/drover.v1.AccessService/ListTokens': 'admin',
  '/drover.v1.AccessService/RevokeToken': 'admin',
  '/drover.v1.AccessService/ListAgentCredentials': 'admin',
  '/drover.v1.AccessService/ApproveAgent': 'admin',
  '/drover.v1.AccessService/RevokeAgent': 'admin',
  '/drover.v1.AccessService/WhoAmI': 'viewer',
  '/drover.v1.SecretService/SetSecret': 'admin',
  '/drover.v1.SecretService/ListSecrets': 'operator',
  '/drover.v1.SecretService/DeleteSecret': 'admin',
  '/drover.v1.AuditService/ListAudit': 'admin',
  '/drover.v1.AuditService/VerifyAudit': 'admin',
  '/drover.v1.StatsService/GetStats': 'viewer',
};

/**
 * RPCs that change state (or trade a token for an identity): every call to
 * one is audited, whatever its result. Refused calls to any RPC are audited too.
 */
export const AUDITED = new Set([
  '/drover.v1.AgentService/Enroll',
  '/drover.v1.FleetService/DrainAgent',
  '/drover.v1.RunService/SubmitRun',
  '/drover.v1.RunService/CancelRun',
  '/drover.v1.RunService/DecideApproval',
  '/drover.v1.RunService/RerunRun',
  '/drover.v1.TriggerService/PauseSchedule',
  '/drover.v1.TriggerService/ResumeSchedule',
  '/drover.v1.WorkflowService/ApplyWorkflow',
  '/drover.v1.DeviceService/AddDevice',
  '/drover.v1.DeviceService/RemoveDevice',
  '/drover.v1.AccessService/CreateToken',
  '/drover.v1.AccessService/RevokeToken',
  '/drover.v1.AccessService/ApproveAgent',
  '/drover.v1.AccessService/RevokeAgent',
  '/drover.v1.SecretService/SetSecret',
  '/drover.v1.SecretService/DeleteSecret',
]);

/** Refused calls without a valid token recorded per peer address and minute; past it they are counted in one record. */
const REFUSALS_AUDITED_PER_MINUTE = 60;

/** Request fields that name what a call acts on, in order of preference (never a value or a source). */
const TARGET_FIELDS = ['name', 'id', 'runId', 'workflowRef', 'filename', 'workflow', 'kind'];

/** What an audited call acts on, from its request. */
export function auditTarget(req: unknown): string {
  if (!req || typeof req !== 'object') return '';
  const r = req as Record<string, unknown>;
  // A step of a run (DecideApproval): both, as `run/step`.
  if (typeof r.runId === 'string' && r.runId && typeof r.stepId === 'string' && r.stepId) return `${r.runId}/${r.stepId}`.slice(0, 200);
  for (const f of TARGET_FIELDS) if (typeof r[f] === 'string' && r[f]) return (r[f] as string).slice(0, 200);
  // One level down into a nested message (AddDeviceRequest.device.name); never into a map such as params.
  if (r.device && typeof r.device === 'object') return auditTarget(r.device);
  return '';
}

/** What an audited call decided, beyond its target: an approval's verdict and reason (who decided is the record's actor). */
export function auditDetail(path: string, req: unknown): Record<string, string> {
  if (path !== '/drover.v1.RunService/DecideApproval' || !req || typeof req !== 'object') return {};
  const r = req as { approve?: unknown; reason?: unknown };
  return { decision: r.approve === true ? 'approve' : 'reject', ...(typeof r.reason === 'string' && r.reason ? { reason: r.reason.slice(0, 1000) } : {}) };
}

/** Failures from one peer before answers slow down. */
const FREE_FAILURES = 5;
/** The delay doubles per failure past FREE_FAILURES, from this up to MAX_DELAY_MS. */
const BASE_DELAY_MS = 100;
const MAX_DELAY_MS = 5_000;
/** A peer's failures are forgotten this long after its last one. */
const FORGET_MS = 10 * 60_000;
/** Peers remembered at once; past it the oldest is forgotten (memory stays bounded under a spray of addresses). */
const MAX_PEERS = 10_000;

/** Per-peer failure counts: how long to hold the next answer to a peer. */
export class FailureThrottle {
  private peers = new Map<string, { failures: number; lastMs: number }>();
  constructor(private readonly now: () => number) {}

  delayMs(peer: string): number {
    const p = this.peers.get(peer);
    if (!p) return 0;
    if (this.now() - p.lastMs > FORGET_MS) {
      this.peers.delete(peer);
      return 0;
    }
    const over = p.failures - FREE_FAILURES;
    return over <= 0 ? 0 : Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** Math.min(over - 1, 16));
  }

  failed(peer: string): void {
    const p = this.peers.get(peer) ?? { failures: 0, lastMs: 0 };
    this.peers.delete(peer); // re-insert: Map order is then least recently failed first
    p.failures++;
    p.lastMs = this.now();
    this.peers.set(peer, p);
    if (this.peers.size > MAX_PEERS) this.peers.delete(this.peers.keys().next().value!);
  }

  get size(): number {
    return this.peers.size;
  }
}

/** The address part of a grpc-js peer string (`ipv4:1.2.3.4:5678`, `[::1]:80`). */
export function peerAddress(peer: string): string {
  return peer.replace(/^ipv[46]:/, '').replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
}

function deny(code: grpc.status, errorCode: 'UNAUTHENTICATED' | 'PERMISSION_DENIED', message: string, hint: string): PartialStatusObject {
  const metadata = new grpc.Metadata();
  metadata.set('drover-error-bin', Buffer.from(encodeMessage('ErrorDetail', { code: errorCode, message, hint, problems: [] })));
  return { code, details: message, metadata };
}

export interface AccessOptions {
  tokens: Tokens;
  throttle: FailureThrottle;
  /** Where the first admin token lives, for the hint of a call without one. */
  adminTokenFile: string;
  /** `--insecure`: no TLS, so no client certificates; agents are trusted by name (loopback only). */
  insecure: boolean;
  /** Where audited calls are recorded (absent: nowhere, as in unit tests). */
  audit?: AuditLog;
}

type Actor = AuditEvent['actor'];

/** The bearer token a call's metadata carries ('' for none). */
export function bearerToken(metadata: grpc.Metadata): string {
  const header = metadata.get('authorization')[0];
  return typeof header === 'string' ? /^Bearer\s+(\S+)$/i.exec(header)?.[1] ?? '' : '';
}

/** The caller's token id, from a call's metadata (the interceptor has checked it by then). */
export function callerTokenId(metadata: grpc.Metadata): string {
  const header = metadata.get('authorization')[0];
  const token = typeof header === 'string' ? /^Bearer\s+(\S+)$/i.exec(header)?.[1] ?? '' : '';
  return token ? tokenId(token) : '';
}

/** The check of one call; undefined when it may go on. */
export function checkCall(o: AccessOptions, path: string, metadata: grpc.Metadata, auth: AuthContext | null): PartialStatusObject | undefined {
  return check(o, path, metadata, auth).deny;
}

function check(o: AccessOptions, path: string, metadata: grpc.Metadata, auth: AuthContext | null): { deny?: PartialStatusObject; actor: Actor; verified: boolean } {
  const actor: Actor = { kind: 'anonymous', id: '' };
  /** A token this control plane issued and that is valid (whatever its role): its holder is named in every record. */
  let verified = false;
  const verdict = (deny?: PartialStatusObject) => ({ deny, actor, verified });
  const rule = RPC_RULES[path];
  if (!rule) return verdict(deny(grpc.status.PERMISSION_DENIED, 'PERMISSION_DENIED', `${path} has no access rule, so nobody may call it`, 'this is a bug in drover: report it'));
  if (rule === 'enroll') return verdict();
  if (rule === 'agent') {
    actor.kind = 'agent';
    if (o.insecure) return verdict();
    const der = auth?.sslPeerCertificate?.raw;
    if (der) return verdict();
    return verdict(deny(grpc.status.UNAUTHENTICATED, 'UNAUTHENTICATED', 'agents connect with the client certificate they got at enrollment; none was presented', 'start the agent once with --token <enrollment token> (drover token create --enroll)'));
  }
  const header = metadata.get('authorization')[0];
  const token = typeof header === 'string' ? /^Bearer\s+(\S+)$/i.exec(header)?.[1] ?? '' : '';
  const method = path.split('/').pop();
  if (!token) {
    return verdict(deny(
      grpc.status.UNAUTHENTICATED,
      'UNAUTHENTICATED',
      `${method} needs an API token with the ${rule} role; none was sent`,
      `pass --token or set DROVER_TOKEN (the first admin token is in ${o.adminTokenFile}; more with \`drover token create --role ${rule}\`)`,
    ));
  }
  actor.kind = 'token';
  actor.id = tokenId(token);
  try {
    const rec = o.tokens.check(token, 'api');
    verified = true;
    if (!roleAllows(rec.role as Role, rule)) {
      return verdict(deny(grpc.status.PERMISSION_DENIED, 'PERMISSION_DENIED', `${method} needs the ${rule} role; token ${rec.id} has ${rec.role}`, `use a token with the ${rule} role (drover token create --role ${rule})`));
    }
    o.tokens.use(rec, false);
    return verdict();
  } catch (err) {
    if (!(err instanceof TokenError)) throw err;
    return verdict(deny(grpc.status.UNAUTHENTICATED, 'UNAUTHENTICATED', `${method} refused: ${err.message}`, 'check --token / DROVER_TOKEN; an admin makes tokens with `drover token create --role ROLE`'));
  }
}

/** The error code a status carries (the drover ErrorDetail's, else the gRPC status name). */
function resultOf(status: PartialStatusObject): string {
  if (status.code === grpc.status.OK) return 'ok';
  const bin = status.metadata?.get('drover-error-bin')[0];
  if (bin instanceof Buffer) {
    try {
      return decodeMessage<ErrorDetailOut>('ErrorDetail', bin).code || grpc.status[status.code];
    } catch {
      // not ours: the status name below
    }
  }
  return grpc.status[status.code] ?? String(status.code);
}

function invalidRequest(message: string): PartialStatusObject {
  const metadata = new grpc.Metadata();
  const hint = 'docs/security.md lists the limits of every request field';
  metadata.set('drover-error-bin', Buffer.from(encodeMessage('ErrorDetail', { code: 'INVALID_REQUEST', message, hint, problems: [] })));
  return { code: grpc.status.INVALID_ARGUMENT, details: message, metadata };
}

/**
 * The gRPC server interceptor that applies the access check to every call,
 * then the bounds of proto/limits.ts to every request message (agent links
 * are checked by AgentSessions, which answers with a Reject), and records
 * audited and refused calls.
 */
export function accessInterceptor(o: AccessOptions): grpc.ServerInterceptor {
  const types = requestTypes();
  // Refused calls are recorded at a bounded rate per peer address (a client spraying garbage must not fill the disk);
  // calls that change something, and every call by a valid token, are always recorded.
  const refusals = new PeerRate(REFUSALS_AUDITED_PER_MINUTE, Date.now, (peer, n) =>
    o.audit?.record({ actor: { kind: 'anonymous', id: '' }, action: 'audit.refusals-suppressed', from: peer, result: 'ok', detail: { count: String(n) } }),
  );
  return (method, call) => {
    const path = method.path;
    const peer = peerAddress(call.getPeer());
    const isLink = RPC_RULES[path] === 'agent';
    let actor: Actor = { kind: 'anonymous', id: '' };
    let verified = false;
    let target = '';
    let detail: Record<string, string> = {};
    let recorded = false;
    let denied: { status: PartialStatusObject; delay: number } | undefined;
    let refused = false;
    let gotMessage = false;
    /** The id of what an audited call made or changed (a run's id), from its response. */
    let created = '';
    const audit = (status: PartialStatusObject) => {
      if (recorded || !o.audit) return;
      const result = resultOf(status);
      if (!AUDITED.has(path) && result !== 'UNAUTHENTICATED' && result !== 'PERMISSION_DENIED' && result !== 'INVALID_REQUEST') return;
      if (!verified && result !== 'ok' && !refusals.allow(peer)) return;
      recorded = true;
      const all = { ...detail, ...(created ? { id: created } : {}) };
      o.audit.record({ actor, action: path.replace('/drover.v1.', ''), target, from: peer, result, ...(Object.keys(all).length ? { detail: all } : {}) });
    };
    const refuse = (status: PartialStatusObject) => {
      audit(status);
      call.sendStatus(status);
    };
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        const verdict = check(o, path, metadata, call.getAuthContext());
        actor = verdict.actor;
        verified = verdict.verified;
        // Successes are never slowed, and do not wipe a peer's failures: one valid call
        // from a shared address must not reset the penalty of a guesser behind it.
        if (!verdict.deny) return next(metadata);
        const delay = o.throttle.delayMs(peer);
        o.throttle.failed(peer);
        // An API call's one request message comes next: refuse once it is read, so the audit names the target.
        if (isLink) return void setTimeout(() => refuse(verdict.deny!), delay);
        // (The handler still gets the metadata: it is what asks grpc-js to read the request.)
        denied = { status: verdict.deny, delay };
        next(metadata);
      })
      .withOnReceiveHalfClose((next) => {
        // A refused call's handler never sees the end of a request it never got;
        // a denied call that sent no message at all is refused here.
        if (denied && !gotMessage) {
          const { status, delay } = denied;
          return void setTimeout(() => refuse(status), delay);
        }
        if (!denied && !refused) next();
      })
      .withOnReceiveMessage((message, next) => {
        if (isLink) return next(message);
        gotMessage = true;
        target = auditTarget(message);
        detail = auditDetail(path, message);
        if (denied) {
          const { status, delay } = denied;
          return void setTimeout(() => refuse(status), delay);
        }
        if (path === '/drover.v1.AgentService/Enroll') {
          const id = tokenId(String((message as { token?: unknown }).token ?? ''));
          actor = { kind: 'enroll-token', id };
        }
        const type = types.get(path);
        const bad = type ? checkMessage(type, message) : undefined;
        if (bad) {
          refused = true;
          return refuse(invalidRequest(`${path.split('/').pop()} refused: ${bad.message}`));
        }
        next(message);
      })
      .build();
    const responder = new grpc.ResponderBuilder()
      .withStart((next) => next(listener))
      .withSendMessage((message, next) => {
        // An id only (RunInfo.id, TokenInfo.id, CreateTokenResponse.info.id): never a token or any other field of the response.
        const m = message as { id?: unknown; info?: { id?: unknown } } | null;
        const id = m?.id ?? m?.info?.id;
        if (AUDITED.has(path) && typeof id === 'string') created = id.slice(0, 200);
        next(message);
      })
      .withSendStatus((status, next) => {
        audit(status);
        next(status);
      })
      .build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}
