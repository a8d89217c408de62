/**
 * `drover server status`: the replicas of a replicated control plane, who
 * leads at which epoch, and how the state stream's replicas keep up, read
 * from JetStream (the lease bucket and the stream's cluster info) with the
 * control plane's own NATS user, so it answers while no replica leads.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { STATE_STREAM } from '../store/jetstream-store.js';
import { LEADER_BUCKET, type LeaderInfo, type ReplicaInfo } from './lease.js';

export interface ClusterStatus {
  /** The lease holder; null while none is elected. */
  leader: (LeaderInfo & { leaseMs: number }) | null;
  replicas: ReplicaInfo[];
  /** The state stream on the NATS cluster. */
  store: {
    stream: string;
    messages: number;
    lastSeq: number;
    /** The nats-server leading the stream ('' while it elects one). */
    leader: string;
    /** Its other replicas: current (caught up), how many operations behind, and when last heard from (ms ago). */
    replicas: { server: string; current: boolean; lag: number; activeMs: number }[];
  };
}

/** Reads the status; throws when JetStream does not answer. */
export async function clusterStatus(nc: NatsConnection): Promise<ClusterStatus> {
  const kv = await new Kvm(nc).open(LEADER_BUCKET);
  const leaseMs = (await kv.status()).ttl;
  const e = await kv.get('leader');
  const leader = e && e.operation === 'PUT' && e.value.length ? { ...(JSON.parse(e.string()) as LeaderInfo), leaseMs } : null;
  const replicas: ReplicaInfo[] = [];
  for await (const key of await kv.keys('replica.>')) {
    const r = await kv.get(key);
    if (!(r?.operation === 'PUT' && r.value.length)) continue;
    const replica = JSON.parse(r.string()) as ReplicaInfo;
    // The lease key decides: a deposed or dead leader's entry says "leader" until it is renewed or expires.
    replicas.push({ ...replica, role: leader && replica.id === leader.id ? 'leader' : 'standby' });
  }
  replicas.sort((a, b) => (a.role === b.role ? a.address.localeCompare(b.address) : a.role === 'leader' ? -1 : 1));
  const info = await (await jetstreamManager(nc)).streams.info(STATE_STREAM);
  return {
    leader,
    replicas,
    store: {
      stream: STATE_STREAM,
      messages: info.state.messages,
      lastSeq: info.state.last_seq,
      leader: info.cluster?.leader ?? '',
      replicas: (info.cluster?.replicas ?? []).map((r) => ({ server: r.name, current: r.current, lag: r.lag ?? 0, activeMs: Math.round((r.active ?? 0) / 1e6) })),
    },
  };
}

/** The status as aligned text. */
export function formatStatus(s: ClusterStatus, now = Date.now()): string {
  const out: string[] = [];
  out.push(s.leader ? `leader   ${s.leader.address}  epoch ${s.leader.epoch}  since ${new Date(s.leader.sinceMs).toISOString()}  (lease ${s.leader.leaseMs} ms)` : 'leader   none elected (a standby takes the lease within about a lease length; is every replica down?)');
  out.push('');
  const rows = [['REPLICA', 'ROLE', 'HTTP', 'UP', 'SEEN'], ...s.replicas.map((r) => [r.address, r.role, r.http || '-', ago(now - r.startedMs), `${ago(now - r.seenMs)} ago`])];
  out.push(...table(rows));
  if (!s.replicas.length) out.push('(no replica is alive)');
  out.push('');
  out.push(`state    stream ${s.store.stream}: ${s.store.messages} messages, last sequence ${s.store.lastSeq}, led by ${s.store.leader || '(electing)'}`);
  const peers = [['NATS REPLICA', 'CURRENT', 'LAG', 'ACTIVE'], ...s.store.replicas.map((r) => [r.server, r.current ? 'yes' : 'NO', String(r.lag), `${ago(r.activeMs)} ago`])];
  if (s.store.replicas.length) out.push(...table(peers));
  return `${out.join('\n')}\n`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  '));
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
