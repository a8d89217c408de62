/**
 * Numbers agent messages and keeps each one until the control plane
 * acknowledges it; after a reconnect the unacknowledged tail is sent again in
 * order. The control plane applies each (agent, seq) once, so resending is
 * always safe. This version keeps the tail in memory.
 */
import type { AgentMessage } from '../proto/index.js';

export type Body = Omit<AgentMessage, 'seq'>;

/** Unacked messages kept at most; past this, producers should slow down. */
export const MAX_UNACKED = 100_000;

export class Outbox {
  private pending: AgentMessage[] = [];
  private nextSeq = 1;
  private welcomed = false;
  private sender: ((m: AgentMessage) => void) | undefined;

  /** Appends a message and sends it now when a link is up. */
  push(body: Body): void {
    const msg = { ...body, seq: this.nextSeq++ } as AgentMessage;
    this.pending.push(msg);
    this.sender?.(msg);
  }

  /** Called on each Welcome: resend everything not yet applied, in order. */
  attach(sender: (m: AgentMessage) => void, appliedSeq: number): void {
    if (!this.welcomed && appliedSeq >= this.firstSeq()) {
      // A fresh process starts counting at 1; continue above what the control
      // plane already applied from this agent's earlier life.
      let seq = appliedSeq + 1;
      for (const m of this.pending) m.seq = seq++;
      this.nextSeq = seq;
    }
    this.welcomed = true;
    this.ack(appliedSeq);
    this.sender = sender;
    for (const m of this.pending) sender(m);
  }

  detach(): void {
    this.sender = undefined;
  }

  ack(seq: number): void {
    let n = 0;
    while (n < this.pending.length && (this.pending[n].seq as number) <= seq) n++;
    if (n) this.pending.splice(0, n);
  }

  get unacked(): number {
    return this.pending.length;
  }

  get lastAcked(): number {
    return this.firstSeq() - 1;
  }

  private firstSeq(): number {
    return (this.pending[0]?.seq as number | undefined) ?? this.nextSeq;
  }
}
