/**
 * What the run state machine asks after every step event — is the run done,
 * how many instances of a fan-out have ended, failed or are running, which
 * held instances come next, which steps an agent has — kept up to date as
 * steps change instead of recomputed from every step of the run. That keeps
 * the work per event O(1) in the size of the run, where recomputing made a
 * fan-out to N agents cost O(N²) (docs/performance.md).
 *
 * Pure bookkeeping: every change to a step record must go through
 * `change()`, which classifies the record before and after.
 */
import { TERMINAL_STEP, type RunRecord, type StepRecord } from '../model/run.js';

interface Counts {
  size: number;
  terminal: number;
  failed: number;
  /** Not held and not terminal: sent to an agent (or about to be). */
  active: number;
  /** Status other than pending. */
  started: number;
  /** Instances waiting for a maxParallel slot, in declaration order; `head` is the next one. */
  held: StepRecord[];
  head: number;
}

interface Class {
  terminal: number;
  failed: number;
  active: number;
  started: number;
}

function classify(s: StepRecord): Class {
  const terminal = TERMINAL_STEP.has(s.status) ? 1 : 0;
  return { terminal, failed: s.status === 'failed' ? 1 : 0, active: !s.held && !terminal ? 1 : 0, started: s.status !== 'pending' ? 1 : 0 };
}

export class RunProgress {
  /** Step records (units and groups) that are not terminal. */
  open = 0;
  private groups = new Map<string, Counts>();
  /** Units by the agent they are placed on, in declaration order. */
  private byAgent = new Map<string, Set<StepRecord>>();
  /** Units taken away from a lost agent (they carry previousAgents). */
  readonly moved = new Set<StepRecord>();

  constructor(run: RunRecord) {
    for (const g of run.plan.groups) {
      const c: Counts = { size: g.instances.length, terminal: 0, failed: 0, active: 0, started: 0, held: [], head: 0 };
      for (const id of g.instances) {
        const s = run.steps[id];
        const k = classify(s);
        c.terminal += k.terminal;
        c.failed += k.failed;
        c.active += k.active;
        c.started += k.started;
        if (s.held) c.held.push(s);
      }
      this.groups.set(g.id, c);
    }
    for (const p of run.plan.steps) {
      const s = run.steps[p.id];
      if (s.agent) this.place(s, s.agent);
      if (s.previousAgents.length) this.moved.add(s);
    }
    for (const s of Object.values(run.steps)) if (!TERMINAL_STEP.has(s.status)) this.open++;
  }

  /** Applies `mutate` to a step record and updates every count it affects. */
  change(step: StepRecord, mutate: () => void) {
    const before = classify(step);
    const agent = step.agent;
    mutate();
    const after = classify(step);
    this.open -= after.terminal - before.terminal;
    const c = step.parent ? this.groups.get(step.parent) : undefined;
    if (c) {
      c.terminal += after.terminal - before.terminal;
      c.failed += after.failed - before.failed;
      c.active += after.active - before.active;
      c.started += after.started - before.started;
    }
    if (step.agent !== agent) {
      this.byAgent.get(agent)?.delete(step);
      if (step.agent) this.place(step, step.agent);
    }
    if (step.previousAgents.length) this.moved.add(step);
  }

  /** Counts of a fan-out or forEach group's instances. */
  group(id: string): Readonly<Omit<Counts, 'held' | 'head'>> {
    return this.groups.get(id)!;
  }

  /** Up to `n` of the group's instances still held, oldest first; they leave the queue (the caller un-holds them). */
  takeHeld(groupId: string, n: number): StepRecord[] {
    const c = this.groups.get(groupId)!;
    const out: StepRecord[] = [];
    while (out.length < n && c.head < c.held.length) {
      const s = c.held[c.head++];
      if (s.held) out.push(s);
    }
    return out;
  }

  /** Units placed on `agent`. */
  stepsOf(agent: string): Iterable<StepRecord> {
    return this.byAgent.get(agent) ?? [];
  }

  hasAgent(agent: string): boolean {
    return (this.byAgent.get(agent)?.size ?? 0) > 0;
  }

  /** Every agent with a unit of this run, sorted. */
  agents(): string[] {
    return [...this.byAgent.keys()].filter((a) => this.hasAgent(a)).sort();
  }

  private place(s: StepRecord, agent: string) {
    let set = this.byAgent.get(agent);
    if (!set) this.byAgent.set(agent, (set = new Set()));
    set.add(s);
  }
}
