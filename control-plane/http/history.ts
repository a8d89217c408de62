/**
 * Per-agent CPU and memory history for the dashboard's sparklines: the last
 * SAMPLES_KEPT heartbeats of every agent, in memory only (a restart starts
 * them empty; the stored fleet samples are the stats service's).
 */
import type { Fleet, LiveAgent } from '../fleet.js';

/** One heartbeat's reading: its time (ms) and CPU and memory percent. */
export interface Sample {
  t: number;
  cpu: number;
  mem: number;
}

/** Heartbeats kept per agent: a minute at the 1 s heartbeat of `drover dev`, five at the default 5 s. */
export const SAMPLES_KEPT = 60;

export class AgentHistory {
  private samples = new Map<string, Sample[]>();
  private readonly off: () => void;

  constructor(fleet: Fleet) {
    // Subscribed before any feed: a change's sample is recorded by the time a feed renders it.
    this.off = fleet.changes.subscribe((a) => this.record(a));
  }

  /** Records the agent's heartbeat when it is one not seen yet; returns the new sample, if any. */
  private record(a: LiveAgent): Sample | undefined {
    const hb = a.heartbeat;
    if (!hb) return undefined;
    const list = this.samples.get(a.record.name) ?? [];
    const t = hb.atMs || a.heardMs;
    if (list.length && list[list.length - 1].t >= t) return undefined;
    const s = { t, cpu: round(hb.cpuPercent), mem: round(hb.memoryPercent) };
    list.push(s);
    if (list.length > SAMPLES_KEPT) list.splice(0, list.length - SAMPLES_KEPT);
    this.samples.set(a.record.name, list);
    return s;
  }

  /** The latest sample of an agent. */
  last(name: string): Sample | undefined {
    const list = this.samples.get(name);
    return list?.[list.length - 1];
  }

  /** Every agent's samples, oldest first. */
  all(): Record<string, Sample[]> {
    return Object.fromEntries([...this.samples].map(([k, v]) => [k, [...v]]));
  }

  close(): void {
    this.off();
  }
}

const round = (n: number) => Math.round(n * 10) / 10;
