/**
 * The start of a replica of a replicated control plane: it listens on its
 * gRPC address as a standby (every call refused with NOT_LEADER, naming the
 * leader) until it takes the leader lease, then hands the address to the
 * full control plane, which loads the state and runs.
 */
import * as grpc from '@grpc/grpc-js';
import type { NatsConnection } from '@nats-io/nats-core';
import { hostname } from 'node:os';
import { droverV1 } from '../../proto/index.js';
import type { Logger } from '../log.js';
import { LeaderLease } from './lease.js';
import { standbyService } from './standby.js';

export interface ElectionOptions {
  /** The control plane's gRPC server: bound here, it serves the standby's refusals until this replica leads, then the caller's services (no moment without a listener). */
  server: grpc.Server;
  nc: NatsConnection;
  /** --listen (its port may be 0: the standby's bound port is kept for the leader). */
  listen: string;
  /** --advertise: the first is the host others dial when --listen is a wildcard. */
  advertise: string[];
  /** --http, for the lease value ('' when off). */
  http: string;
  replicas: number;
  leaseMs: number;
  creds: grpc.ServerCredentials;
  log: Logger;
  /** Told when the lease is lost after being held: this process must stop acting at once. */
  onLost: (reason: string) => void;
  /** Retries of the bucket's creation while JetStream elects (its ride-through). */
  rideThroughMs?: number;
}

/** The address other replicas, clients and agents dial: --listen, with a wildcard host replaced. */
export function advertisedAddress(listen: string, advertise: string[]): string {
  const [, host, port] = /^(.*):(\d+)$/.exec(listen) ?? [];
  const wildcard = host === '0.0.0.0' || host === '[::]' || host === '::';
  return `${wildcard ? (advertise[0] ?? hostname()) : host}:${port}`;
}

/**
 * Serves as a standby until this replica leads. Returns the lease (held)
 * and the address to listen on (the port the standby had).
 */
export async function standByUntilLeader(o: ElectionOptions): Promise<{ lease: LeaderLease; listen: string; port: number }> {
  const v1 = droverV1();
  const server = o.server;
  let lease: LeaderLease | undefined;
  let address = o.listen;
  const services = [v1.AgentService, v1.FleetService, v1.RunService, v1.WorkflowService, v1.DeviceService, v1.AccessService, v1.SecretService, v1.AuditService, v1.StatsService, v1.TriggerService].map((s) => s.service);
  for (const svc of services) server.addService(svc, standbyService(svc, () => address, () => lease?.leader()));
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(o.listen, o.creds, (err, p) => (err ? reject(err) : resolve(p))));
  const listen = o.listen.replace(/:\d+$/, `:${port}`);
  address = advertisedAddress(listen, o.advertise);
  lease = new LeaderLease({ nc: o.nc, replicas: o.replicas, address, http: o.http, ttlMs: o.leaseMs, log: o.log, onLost: o.onLost });
  const giveUpAt = Date.now() + (o.rideThroughMs ?? 15_000);
  for (;;) {
    try {
      await lease.open();
      break;
    } catch (err) {
      if (Date.now() >= giveUpAt || !/temporarily unavailable|timeout|no responders|not enabled/i.test(String((err as Error)?.message ?? err))) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  process.stdout.write(`drover server standby on ${address}: waiting for the leader lease\n`);
  o.log.info({ address, leaseMs: o.leaseMs }, 'standby: serving NOT_LEADER until this replica takes the leader lease');
  const epoch = await lease.campaign((leader) => {
    if (leader) o.log.info({ leader: leader.address, epoch: leader.epoch }, 'standby: another replica leads');
    else o.log.info('standby: no leader; trying to take the lease');
  });
  // The refusals stay until the caller puts each real service in their place, once the state is loaded.
  o.log.info({ address, epoch }, 'this replica leads now; loading the state');
  return { lease, listen, port };
}
