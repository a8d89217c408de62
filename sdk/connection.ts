/**
 * The one gRPC channel a DroverClient uses, shared by its Fleet, Run and
 * Workflow service stubs, plus the two call shapes the SDK needs (unary as a promise,
 * server stream as an async iterator, see call-stream.ts) with errors mapped by fromGrpcError.
 *
 * Fail fast: before the first call, and after any SERVER_UNREACHABLE, the
 * channel must become READY within `connectTimeoutMs`; a refused connection
 * (TRANSIENT_FAILURE) fails at once instead of waiting for the deadline.
 */
import * as grpc from '@grpc/grpc-js';
import { droverV1, type DeviceServiceClient, type FleetServiceClient, type RunServiceClient, type WorkflowServiceClient } from '../proto/index.js';
import { CallStream } from './call-stream.js';
import { fromGrpcError, serverUnreachable } from './errors.js';

/** Port the control plane listens on unless told otherwise. */
export const DEFAULT_ADDRESS = '127.0.0.1:7400';

/**
 * How long the first call waits for a connection. Long enough for a server on
 * another continent, short enough that a typo in the address is noticed at
 * once by a person at a terminal.
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 3000;

type Callback<T> = (err: grpc.ServiceError | null, value?: T) => void;

/** A live connection to one control plane. */
export class Connection {
  readonly fleet: FleetServiceClient;
  readonly runs: RunServiceClient;
  readonly workflows: WorkflowServiceClient;
  readonly devices: DeviceServiceClient;
  private readonly channel: grpc.Channel;
  private ready: Promise<void> | undefined;

  constructor(
    readonly address: string,
    private readonly connectTimeoutMs: number,
  ) {
    this.channel = new grpc.Channel(address, grpc.credentials.createInsecure(), {});
    const v1 = droverV1();
    const opts = { channelOverride: this.channel };
    this.fleet = new v1.FleetService(address, grpc.credentials.createInsecure(), opts);
    this.runs = new v1.RunService(address, grpc.credentials.createInsecure(), opts);
    this.workflows = new v1.WorkflowService(address, grpc.credentials.createInsecure(), opts);
    this.devices = new v1.DeviceService(address, grpc.credentials.createInsecure(), opts);
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
        if (state === grpc.connectivityState.TRANSIENT_FAILURE || state === grpc.connectivityState.SHUTDOWN) {
          return reject(serverUnreachable(this.address));
        }
        this.channel.watchConnectivityState(state, deadline, (err) => {
          if (err) reject(serverUnreachable(this.address, err));
          else check();
        });
      };
      check();
    });
  }

  /** Runs a unary call after connecting; errors come back as DroverErrors. */
  async unary<T>(call: (cb: Callback<T>) => void): Promise<T> {
    await this.connect();
    return new Promise<T>((resolve, reject) => {
      call((err, value) => {
        if (err) {
          if (err.code === grpc.status.UNAVAILABLE) this.ready = undefined;
          reject(fromGrpcError(err, this.address));
        } else resolve(value as T);
      });
    });
  }

  /**
   * A server stream as an async iterable, opened on the first `next()` after
   * connecting. Leaving the loop cancels the call on the server.
   */
  stream<T, U>(start: () => grpc.ClientReadableStream<T>, map: (message: T) => U | undefined): AsyncIterableIterator<U, undefined, undefined> {
    return new CallStream(
      async () => {
        await this.connect();
        return start();
      },
      map,
      (err) => {
        if ((err as Partial<grpc.ServiceError>)?.code === grpc.status.UNAVAILABLE) this.ready = undefined;
        return fromGrpcError(err, this.address);
      },
    );
  }

  /** Closes the channel; calls in flight fail. */
  close(): void {
    this.fleet.close();
    this.runs.close();
    this.workflows.close();
    this.devices.close();
    this.channel.close();
  }
}
