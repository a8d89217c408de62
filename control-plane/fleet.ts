/**
 * The live fleet: every agent the control plane has ever seen, its link (when
 * connected) and its latest heartbeat. Heartbeats stay in memory; only
 * identity, labels, facts and delivery progress are stored.
 */
import type { HeartbeatOut, HelloOut, ServerMessage } from '../proto/index.js';
import { Topic } from './events.js';
import type { FleetAgent } from '../common/workflow/model/target.js';
import type { AgentFacts, AgentRecord, Store } from './store/store.js';
import type { AgentConnection } from './transport/agent-link.js';

export type AgentState = 'connected' | 'disconnected' | 'lost';

export interface LiveAgent {
  record: AgentRecord;
  /**
   * When liveness last heard of the agent: its last message, or this control
   * plane's start for agents loaded from the store (they get the full
   * lostAfter to come back after a restart, however long it was down).
   */
  heardMs: number;
  state: AgentState;
  conn?: AgentConnection;
  heartbeat?: HeartbeatOut;
  connectedSinceMs: number;
  /** The agent process behind the current link (Hello.boot_id). */
  bootId?: string;
}

export class Fleet {
  private agents = new Map<string, LiveAgent>();
  readonly changes = new Topic<LiveAgent>();

  constructor(
    private readonly store: Store,
    private readonly now: () => number,
  ) {
    for (const record of store.listAgents()) {
      this.agents.set(record.name, { record, state: 'disconnected', connectedSinceMs: 0, heardMs: now() });
    }
  }

  list(): LiveAgent[] {
    return [...this.agents.values()].sort((a, b) => a.record.name.localeCompare(b.record.name));
  }

  get(name: string): LiveAgent | undefined {
    return this.agents.get(name);
  }

  snapshot(): FleetAgent[] {
    return this.list().map((a) => ({
      name: a.record.name,
      labels: a.record.labels,
      state: a.state,
      draining: a.record.draining,
      runningSteps: a.heartbeat?.runningSteps ?? 0,
      cpuPercent: a.heartbeat?.cpuPercent ?? 0,
    }));
  }

  /**
   * Registers a hello. The one duplicate-identity rule (docs/protocol.md,
   * rule `identity-newest`), for both transports: a newer connection under
   * the same name (it presented that agent's credential: the transport
   * checked) replaces the old one, which is always told Reject{REPLACED} and
   * closed. Another live process stops on it instead of reconnecting and
   * taking the link back a moment later; the same process has already left
   * that link (it is the half-open one it reconnected from) and ignores it.
   */
  connect(conn: AgentConnection, hello: HelloOut): LiveAgent {
    const now = this.now();
    const existing = this.agents.get(hello.name);
    if (existing?.conn && existing.conn !== conn) {
      const other = existing.bootId && existing.bootId !== hello.bootId;
      existing.conn.send({
        reject: {
          code: 'REPLACED',
          message: other
            ? `another process with this agent's identity ("${hello.name}") connected from ${conn.peer}; this one stops. Run one agent process per identity and state dir`
            : `a newer connection of this agent process ("${hello.name}") from ${conn.peer} replaced this one`,
        },
      });
      existing.conn.close('replaced by a newer connection');
    }
    // A new state dir means a new journal whose numbering starts at 1 again.
    const sameInstance = !existing?.record.instanceId || existing.record.instanceId === hello.instanceId;
    const record: AgentRecord = {
      name: hello.name,
      labels: { ...hello.labels },
      facts: toFacts(hello),
      firstSeenMs: existing?.record.firstSeenMs ?? now,
      lastSeenMs: now,
      appliedSeq: sameInstance ? (existing?.record.appliedSeq ?? 0) : 0,
      instanceId: hello.instanceId,
      draining: existing?.record.draining ?? false,
    };
    const live: LiveAgent = { record, state: 'connected', conn, heartbeat: existing?.heartbeat, connectedSinceMs: now, heardMs: now, bootId: hello.bootId };
    this.agents.set(record.name, live);
    this.store.putAgent(record);
    this.changes.publish(live);
    return live;
  }

  /** Marks the agent disconnected if `conn` is still its current link. */
  disconnect(name: string, conn: AgentConnection) {
    const live = this.agents.get(name);
    if (!live || live.conn !== conn) return;
    live.conn = undefined;
    live.state = 'disconnected';
    live.record.lastSeenMs = this.now();
    this.store.putAgent(live.record);
    this.changes.publish(live);
  }

  heartbeat(name: string, hb: HeartbeatOut) {
    const live = this.agents.get(name);
    if (!live) return;
    live.heartbeat = hb;
    live.record.lastSeenMs = live.heardMs = this.now();
    this.changes.publish(live);
  }

  /**
   * Liveness: a connected agent silent for `disconnectAfterMs` has its link
   * closed; a disconnected one silent for `lostAfterMs` becomes lost. Returns
   * the names of agents that became lost.
   */
  sweep(disconnectAfterMs: number, lostAfterMs: number): string[] {
    const now = this.now();
    const lost: string[] = [];
    for (const live of this.agents.values()) {
      const silent = now - live.heardMs;
      if (live.state === 'connected' && silent > disconnectAfterMs) {
        live.conn?.close('no heartbeat');
        live.conn = undefined;
        live.state = 'disconnected';
        this.store.putAgent(live.record);
        this.changes.publish(live);
      }
      if (live.state === 'disconnected' && silent > lostAfterMs) {
        live.state = 'lost';
        lost.push(live.record.name);
        this.changes.publish(live);
      }
    }
    return lost;
  }

  /** Marks an agent lost at once (revoked): its link is already cut. */
  markLost(name: string) {
    const live = this.agents.get(name);
    if (!live) return;
    live.conn = undefined;
    live.state = 'lost';
    this.changes.publish(live);
  }

  setDraining(name: string, draining: boolean): LiveAgent | undefined {
    const live = this.agents.get(name);
    if (!live) return undefined;
    live.record.draining = draining;
    this.store.putAgent(live.record);
    live.conn?.send({ drain: { enabled: draining } });
    this.changes.publish(live);
    return live;
  }

  /** Sends to a connected agent; false when it is not connected. */
  send(name: string, msg: ServerMessage): boolean {
    const conn = this.agents.get(name)?.conn;
    if (!conn) return false;
    conn.send(msg);
    return true;
  }
}

function toFacts(hello: HelloOut): AgentFacts {
  const f = hello.facts;
  return {
    hostname: f?.hostname ?? '',
    os: f?.os ?? '',
    osRelease: f?.osRelease ?? '',
    arch: f?.arch ?? '',
    cpuModel: f?.cpuModel ?? '',
    cpuCount: f?.cpuCount ?? 0,
    memoryBytes: f?.memoryBytes ?? 0,
    disks: (f?.disks ?? []).map((d) => ({ mount: d.mount, fs: d.fs, sizeBytes: d.sizeBytes })),
    ipAddresses: [...(f?.ipAddresses ?? [])],
    agentVersion: f?.agentVersion ?? '',
  };
}
