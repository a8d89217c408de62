/**
 * The one gRPC channel a DroverClient uses, shared by its Fleet, Run and
 * Workflow service stubs, plus the two call shapes the SDK needs (unary as a promise,
 * server stream as an async iterator, see call-stream.ts) with errors mapped by fromGrpcError.
 *
 * Fail fast: before the first call, and after any SERVER_UNREACHABLE, the
 * channel must become READY within `connectTimeoutMs`; a refused connection
 * (TRANSIENT_FAILURE, and nothing answers at the address) fails at once
 * instead of waiting for the deadline. When a server does answer, a failed
 * connection was transient (a busy server, a link that dropped): the client
 * waits for the next one up to the deadline rather than fail a call.
 */
import * as grpc from '@grpc/grpc-js';
import { droverV1, type AccessServiceClient, type AuditServiceClient, type DeviceServiceClient, type SecretServiceClient, type StatsServiceClient, type TriggerServiceClient, type FleetServiceClient, type RunServiceClient, type WorkflowServiceClient } from '../proto/index.js';
import { LEADER_METADATA_KEY } from '../common/errors.js';
import { CallStream } from './call-stream.js';
import { serverUnreachable } from './errors.js';
import { fromGrpcError } from './grpc-errors.js';
import { diagnoseTls } from './tls.js';
import { checkControlPlaneIdentity } from '../common/tls.js';

export { DEFAULT_ADDRESS } from './defaults.js';

/**
 * How long the first call waits for a connection. Long enough for a server on
 * another continent, short enough that a typo in the address is noticed at
 * once by a person at a terminal.
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 3000;

type Callback<T> = (err: grpc.ServiceError | null, value?: T) => void;

/** How a Connection proves itself and checks the server. */
export interface ConnectionSecurity {
  /** API token sent as `authorization: Bearer …` on every call; '' sends none. */
  token: string;
  /** PEM of the CA that signed the server's certificate; undefined: the system's roots. */
  caPem?: string;
  /** Plaintext, for a control plane started with --insecure on this machine. */
  insecure: boolean;
}

/** Redirects from standby to leader followed at once for one call; more wait FAILOVER_POLL_MS each (a standby may still name a leader that just died). */
const MAX_REDIRECTS = 3;
/**
 * How long a call keeps following standbys and returning to the replica it
 * was given while a failover is under way: longer than a lease (3 s by
 * default) plus the new leader's state load.
 */
const FAILOVER_WAIT_MS = 10_000;
const FAILOVER_POLL_MS = 200;

/**
 * A live connection to one control plane. A standby replica of a replicated
 * control plane refuses every call with NOT_LEADER and the leader's address:
 * the connection then moves to that address (the leader's certificate is
 * checked against the same CA) and repeats the call, which the standby did
 * nothing with.
 */
export class Connection {
  fleet!: FleetServiceClient;
  runs!: RunServiceClient;
  workflows!: WorkflowServiceClient;
  devices!: DeviceServiceClient;
  access!: AccessServiceClient;
  secrets!: SecretServiceClient;
  audit!: AuditServiceClient;
  stats!: StatsServiceClient;
  triggers!: TriggerServiceClient;
  private channel!: grpc.Channel;
  private ready: Promise<void> | undefined;

  /** The address this connection was made for: where it returns when a leader it was sent to stops answering. */
  private readonly home: string;

  constructor(
    public address: string,
    private readonly connectTimeoutMs: number,
    private readonly security: ConnectionSecurity,
  ) {
    this.home = address;
    this.dial(address);
  }

  private dial(address: string) {
    const security = this.security;
    const creds = security.insecure ? grpc.credentials.createInsecure() : grpc.credentials.createSsl(security.caPem ? Buffer.from(security.caPem) : null, null, null, { checkServerIdentity: checkControlPlaneIdentity });
    this.channel = new grpc.Channel(address, creds, {});
    const v1 = droverV1();
    const token = security.token;
    // One interceptor adds the token to every call (it works on plaintext links too, unlike call credentials).
    const auth: grpc.Interceptor = (options, next) =>
      new grpc.InterceptingCall(next(options), {
        start(metadata, listener, start) {
          if (token) metadata.set('authorization', `Bearer ${token}`);
          start(metadata, listener);
        },
      });
    const opts = { channelOverride: this.channel, interceptors: [auth] };
    this.fleet = new v1.FleetService(address, creds, opts);
    this.runs = new v1.RunService(address, creds, opts);
    this.workflows = new v1.WorkflowService(address, creds, opts);
    this.devices = new v1.DeviceService(address, creds, opts);
    this.access = new v1.AccessService(address, creds, opts);
    this.secrets = new v1.SecretService(address, creds, opts);
    this.audit = new v1.AuditService(address, creds, opts);
    this.stats = new v1.StatsService(address, creds, opts);
    this.triggers = new v1.TriggerService(address, creds, opts);
  }

  /** The leader a NOT_LEADER refusal names, when it is another address than this one. */
  private redirect(err: unknown): string | undefined {
    const leader = (err as Partial<grpc.ServiceError>)?.metadata?.get(LEADER_METADATA_KEY)[0];
    return typeof leader === 'string' && leader && leader !== this.address ? leader : undefined;
  }

  /** Moves to another address: calls from now on go there. */
  private retarget(address: string) {
    this.close();
    this.ready = undefined;
    this.address = address;
    this.dial(address);
  }

  /** Resolves once the channel is READY; rejects with SERVER_UNREACHABLE. */
  connect(): Promise<void> {
    this.ready ??= this.waitReady().catch((err: unknown) => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  private waitReady(): Promise<void> {
    const deadline = Date.now() + this.connectTimeoutMs;
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const state = this.channel.getConnectivityState(true);
        if (state === grpc.connectivityState.READY) return resolve();
        const watch = () =>
          this.channel.watchConnectivityState(state, deadline, (err) => {
            if (err) reject(serverUnreachable(this.address, err));
            else check();
          });
        if (state === grpc.connectivityState.SHUTDOWN) return reject(serverUnreachable(this.address));
        if (state === grpc.connectivityState.TRANSIENT_FAILURE) {
          // Something answers but the handshake failed? Say what, instead of "nobody is there". A server that
          // answers had a connection fail once (grpc-js tries again after a backoff): wait for it until the deadline.
          return void diagnoseTls(this.address, this.security).then((found) => (found === 'answers' ? watch() : reject(found === 'silent' ? serverUnreachable(this.address) : found)));
        }
        watch();
      };
      check();
    });
  }

  /** Runs a unary call after connecting; errors come back as DroverErrors. */
  async unary<T>(call: (cb: Callback<T>) => void): Promise<T> {
    const giveUpAt = Date.now() + FAILOVER_WAIT_MS;
    // Another hop is allowed while a failover may be under way; past the first few, each waits a little.
    const hopAgain = async (hop: number) => {
      if (Date.now() >= giveUpAt) return false;
      if (hop >= MAX_REDIRECTS) await new Promise((r) => setTimeout(r, FAILOVER_POLL_MS));
      return true;
    };
    for (let hop = 0; ; hop++) {
      try {
        await this.connect();
      } catch (err) {
        // A leader we were sent to is gone: the replica we were given names the next one.
        if (this.address === this.home || !(await hopAgain(hop))) throw err;
        this.retarget(this.home);
        continue;
      }
      const at = this.address;
      const outcome = await new Promise<{ value?: T; err?: grpc.ServiceError }>((resolve) => call((err, value) => resolve(err ? { err } : { value })));
      if (!outcome.err) return outcome.value as T;
      const err = outcome.err;
      // Another call moved the connection meanwhile (calls share it): a call never sent, or refused by a standby, goes again there.
      if (this.address !== at && (this.redirect(err) !== undefined || /^No connection established/.test(err.details)) && (await hopAgain(hop))) continue;
      const leader = this.redirect(err);
      if (leader && (await hopAgain(hop))) {
        this.retarget(leader);
        continue;
      }
      if (err.code === grpc.status.UNAVAILABLE) this.ready = undefined;
      // Never sent (grpc-js found no connection): safe to repeat at the replica we were given, which names the next leader.
      if (err.code === grpc.status.UNAVAILABLE && /^No connection established/.test(err.details) && this.address !== this.home && (await hopAgain(hop))) {
        this.retarget(this.home);
        continue;
      }
      const mapped = fromGrpcError(err, this.address);
      // A standby with no leader elected yet: the election takes about a lease.
      if (mapped.code === 'NOT_LEADER' && (await hopAgain(Math.max(hop, MAX_REDIRECTS)))) continue;
      throw mapped;
    }
  }

  /**
   * A server stream as an async iterable, opened on the first `next()` after
   * connecting. Leaving the loop cancels the call on the server.
   */
  stream<T, U>(start: () => grpc.ClientReadableStream<T>, map: (message: T) => U | undefined): AsyncIterableIterator<U, undefined, undefined> {
    return new CallStream(
      async () => {
        try {
          await this.connect();
        } catch (err) {
          if (this.address === this.home) throw err;
          this.retarget(this.home);
          await this.connect();
        }
        return start();
      },
      map,
      (err) => {
        if ((err as Partial<grpc.ServiceError>)?.code === grpc.status.UNAVAILABLE) this.ready = undefined;
        return fromGrpcError(err, this.address);
      },
      // A standby refuses before the first message: open the stream again at the leader.
      (err, hop) => {
        const leader = hop < MAX_REDIRECTS ? this.redirect(err) : undefined;
        if (!leader) return false;
        this.retarget(leader);
        return true;
      },
    );
  }

  /** Closes the channel; calls in flight fail. */
  close(): void {
    this.fleet.close();
    this.runs.close();
    this.workflows.close();
    this.devices.close();
    this.access.close();
    this.secrets.close();
    this.audit.close();
    this.triggers.close();
    this.channel.close();
  }
}
