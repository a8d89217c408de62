/**
 * One fleet-simulator process for the benchmark (started by sim-pool.ts with
 * `node --import tsx`): `count` simulated agents (scripts/sim/fleet.ts), each
 * with its own gRPC connection, or NATS sessions sharing one NATS connection.
 * Answers {type:'stats'} with its counters and exits on {type:'stop'}.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { GrpcLink } from '../../agent/link/grpc-link.js';
import { NatsLink } from '../../agent/link/nats-link.js';
import type { AgentLink } from '../../agent/link/link.js';
import { enrollSimAgents } from '../sim/enroll.js';
import { SimFleet } from '../sim/fleet.js';
import { quietIpServerNameWarning } from '../../common/tls.js';

quietIpServerNameWarning();

export interface SimChildConfig {
  transport: 'grpc' | 'nats';
  /** host:port of the control plane (gRPC), or nats://host:port. */
  address: string;
  count: number;
  prefix: string;
  labels: Record<string, string>;
  /** Spread the first connections over this many ms. */
  rampMs: number;
  /** The control plane's gRPC address and an enrollment token: every simulated agent enrolls, as a real one does. */
  enrollAddress: string;
  enrollToken: string;
}

export type SimChildMessage = { type: 'stats' } | { type: 'stop' };
export interface SimChildStats {
  type: 'stats';
  connected: number;
  welcomes: number;
  stepsRun: number;
  resent: number;
}

const cfg = JSON.parse(process.argv[2]) as SimChildConfig;
let nc: NatsConnection | undefined;
let link: (name: string) => AgentLink;
const names = Array.from({ length: cfg.count }, (_, i) => `${cfg.prefix}${i}`);
const ids = await enrollSimAgents(cfg.enrollAddress, cfg.enrollToken, names);
if (cfg.transport === 'grpc') {
  // A subchannel pool per channel: every simulated agent gets a TCP connection of its own.
  link = (name) => new GrpcLink(cfg.address, ids.tls.get(name), { 'grpc.use_local_subchannel_pool': 1, 'drover.sim': name });
} else {
  nc = await connect({ servers: cfg.address.split(','), name: `drover-bench-sim ${cfg.prefix}`, maxReconnectAttempts: -1, reconnectTimeWait: 1000 });
  const log = pino({ level: 'silent' });
  const shared = nc;
  link = (name) => new NatsLink(shared, name, log);
}
const fleet = new SimFleet({ count: cfg.count, prefix: cfg.prefix, labels: cfg.labels, link, rampMs: cfg.rampMs, controlKey: ids.controlKey });
fleet.start();

process.on('message', (m: SimChildMessage) => {
  if (m.type === 'stats') {
    const s: SimChildStats = { type: 'stats', connected: fleet.connected(), ...fleet.stats };
    process.send!(s);
  } else if (m.type === 'stop') {
    fleet.stop();
    void (nc ? nc.close() : Promise.resolve()).finally(() => process.exit(0));
  }
});
process.on('disconnect', () => process.exit(0));
process.send!({ type: 'ready' });
