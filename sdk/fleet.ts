import type { AgentInfoOut } from '../proto/index.js';
import type { Connection } from './connection.js';
import { toAgent } from './convert.js';
import type { Agent } from './types.js';

/** Filters for `fleet.list`. */
export interface ListAgentsOptions {
  /** Only agents carrying every one of these labels. */
  labels?: Record<string, string>;
}

/** The agents known to the control plane. */
export class FleetApi {
  /** @internal */
  constructor(private readonly conn: Connection) {}

  /** Every agent (matching `labels`), sorted by name. */
  async list(options: ListAgentsOptions = {}): Promise<Agent[]> {
    const res = await this.conn.unary<{ agents: AgentInfoOut[] }>((cb) =>
      this.conn.fleet.listAgents({ labels: options.labels ?? {} }, cb),
    );
    return res.agents.map(toAgent).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** One agent; rejects with AgentNotFoundError. */
  async get(name: string): Promise<Agent> {
    return toAgent(await this.conn.unary((cb) => this.conn.fleet.getAgent({ name }, cb)));
  }

  /**
   * Starts (or with `drain: false` ends) draining an agent: no new work is
   * placed on it; what it runs finishes. Rejects with AgentNotFoundError.
   */
  async drain(name: string, drain = true): Promise<Agent> {
    return toAgent(await this.conn.unary((cb) => this.conn.fleet.drainAgent({ name, drain }, cb)));
  }

  /** The current state of every agent, then each change, until the loop is left. */
  watch(): AsyncIterableIterator<Agent, undefined, undefined> {
    return this.conn.stream(() => this.conn.fleet.watchAgents({}), toAgent);
  }
}
