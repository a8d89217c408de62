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
import { encodeMessage } from '../../proto/index.js';
import type { Role } from '../store/store.js';
import { roleAllows, TokenError, type Tokens } from './tokens.js';

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
};

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
}

/** The check of one call; undefined when it may go on. */
export function checkCall(o: AccessOptions, path: string, metadata: grpc.Metadata, auth: AuthContext | null): PartialStatusObject | undefined {
  const rule = RPC_RULES[path];
  if (!rule) return deny(grpc.status.PERMISSION_DENIED, 'PERMISSION_DENIED', `${path} has no access rule, so nobody may call it`, 'this is a bug in drover: report it');
  if (rule === 'enroll') return undefined;
  if (rule === 'agent') {
    if (o.insecure) return undefined;
    const der = auth?.sslPeerCertificate?.raw;
    if (der) return undefined;
    return deny(grpc.status.UNAUTHENTICATED, 'UNAUTHENTICATED', 'agents connect with the client certificate they got at enrollment; none was presented', 'start the agent once with --token <enrollment token> (drover token create --enroll)');
  }
  const header = metadata.get('authorization')[0];
  const token = typeof header === 'string' ? /^Bearer\s+(\S+)$/i.exec(header)?.[1] ?? '' : '';
  const method = path.split('/').pop();
  if (!token) {
    return deny(
      grpc.status.UNAUTHENTICATED,
      'UNAUTHENTICATED',
      `${method} needs an API token with the ${rule} role; none was sent`,
      `pass --token or set DROVER_TOKEN (the first admin token is in ${o.adminTokenFile}; more with \`drover token create --role ${rule}\`)`,
    );
  }
  try {
    const rec = o.tokens.check(token, 'api');
    if (!roleAllows(rec.role as Role, rule)) {
      return deny(grpc.status.PERMISSION_DENIED, 'PERMISSION_DENIED', `${method} needs the ${rule} role; token ${rec.id} has ${rec.role}`, `use a token with the ${rule} role (drover token create --role ${rule})`);
    }
    o.tokens.use(rec, false);
    return undefined;
  } catch (err) {
    if (!(err instanceof TokenError)) throw err;
    return deny(grpc.status.UNAUTHENTICATED, 'UNAUTHENTICATED', `${method} refused: ${err.message}`, 'check --token / DROVER_TOKEN; an admin makes tokens with `drover token create --role ROLE`');
  }
}

/** The gRPC server interceptor that applies checkCall to every call. */
export function accessInterceptor(o: AccessOptions): grpc.ServerInterceptor {
  return (method, call) => {
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        const peer = peerAddress(call.getPeer());
        const verdict = checkCall(o, method.path, metadata, call.getAuthContext());
        // Successes are never slowed, and do not wipe a peer's failures: one valid call
        // from a shared address must not reset the penalty of a guesser behind it.
        if (!verdict) return next(metadata);
        const delay = o.throttle.delayMs(peer);
        o.throttle.failed(peer);
        setTimeout(() => call.sendStatus(verdict), delay);
      })
      .build();
    const responder = new grpc.ResponderBuilder().withStart((next) => next(listener)).build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}
