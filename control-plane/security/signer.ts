/**
 * Signs control messages to agents (DESIGN.md §7): Assign, Release, Cancel,
 * Drain and Renewed travel inside SignedControl, an Ed25519 signature over an
 * encoded ControlEnvelope that names the agent and carries a counter. The
 * counter starts at this process's start time in microseconds and grows by
 * one per message, so it keeps increasing across restarts (unless more than
 * a million messages a second are sent for longer than the restart takes)
 * and an agent refuses anything it has already seen.
 */
import { sign, type KeyObject } from 'node:crypto';
import { encodeMessage, type ServerMessage } from '../../proto/index.js';

/** The bodies an agent acts on: only these are signed (and accepted only signed). */
export const CONTROL_BODIES = ['assign', 'release', 'cancel', 'drain', 'renewed'] as const;

export class ControlSigner {
  private counter: number;

  constructor(
    private readonly key: KeyObject,
    now: () => number,
  ) {
    this.counter = now() * 1000;
  }

  /** `msg` as it goes to `agent`: wrapped and signed when it is a control message, else unchanged. */
  seal(agent: string, msg: ServerMessage): ServerMessage {
    if (!CONTROL_BODIES.some((b) => msg[b] != null)) return msg;
    const payload = encodeMessage('ControlEnvelope', { agent, counter: ++this.counter, message: msg });
    return { signed: { payload, signature: sign(null, payload, this.key) } };
  }
}
