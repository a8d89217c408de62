/**
 * Checks control messages before the agent acts on them (DESIGN.md §7):
 * Assign, Release, Cancel, Drain, Renewed and RunFinished count only inside a
 * SignedControl whose Ed25519 signature verifies with the key received at
 * enrollment, that names this agent, and whose counter is above every one
 * seen so far. So a broker, a relay or another NATS client cannot make the
 * agent run anything, and a recorded message cannot be played again.
 *
 * The highest counter seen is kept in <state-dir>/identity/control-counter,
 * written at most every COUNTER_SYNC_MS (a replay inside that window after a
 * crash still meets the attempt ledger, which never starts an attempt twice).
 */
import { verify, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONTROL_SIGNATURE_CONTEXT, rootOf } from '../common/control-tree.js';
import { writeSecretFile } from '../common/secret-file.js';
import { decodeMessage, type ControlEnvelopeOut, type ServerMessageOut } from '../proto/index.js';

/** How often a newer counter is written to disk, at most. */
const COUNTER_SYNC_MS = 1000;

/** The bodies that must arrive signed. */
export const CONTROL_BODIES: ReadonlySet<string> = new Set(['assign', 'release', 'cancel', 'drain', 'renewed', 'runFinished']);

/**
 * The last root each key was seen to sign: messages of one batch (several
 * Releases in one turn; in the fleet simulator, one fan-out's thousands of
 * Assigns) cost one signature check, not one each.
 */
const lastVerified = new WeakMap<KeyObject, { signature: string; root: string }>();

function verifyRoot(key: KeyObject, root: Buffer, signature: Uint8Array): boolean {
  const sig = Buffer.from(signature).toString('base64');
  const seen = lastVerified.get(key);
  if (seen && seen.signature === sig && seen.root === root.toString('base64')) return true;
  const good = verify(null, Buffer.concat([CONTROL_SIGNATURE_CONTEXT, root]), key, signature);
  if (good) lastVerified.set(key, { signature: sig, root: root.toString('base64') });
  return good;
}

export type Verdict = { ok: true; message: ServerMessageOut } | { ok: false; why: string };

export class ControlVerifier {
  private last: number;
  private synced: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly file: string | undefined;
  /** Messages refused since start (reported in heartbeats). */
  rejected = 0;

  /** `key` undefined: an --insecure link with no enrollment; envelopes are unwrapped, not verified. */
  constructor(
    private readonly agent: string,
    private readonly key: KeyObject | undefined,
    /** Where the counter is kept; undefined: memory only (the fleet simulator). */
    stateDir: string | undefined,
  ) {
    this.file = stateDir && join(stateDir, 'identity', 'control-counter');
    this.last = this.file && existsSync(this.file) ? Number(readFileSync(this.file, 'utf8').trim()) || 0 : 0;
    this.synced = this.last;
  }

  /** The message to act on, or why `m` is refused. */
  check(m: ServerMessageOut): Verdict {
    if (m.body !== 'signed') {
      if (!CONTROL_BODIES.has(m.body ?? '') || !this.key) return { ok: true, message: m };
      return this.refuse(`an unsigned ${m.body}: control messages must be signed by the control plane`);
    }
    const { payload, signature, proof, index } = m.signed!;
    let good = !this.key;
    try {
      good ||= verifyRoot(this.key!, rootOf(payload, proof, index), signature);
    } catch {
      good = false;
    }
    if (!good) return this.refuse('a control message whose signature does not verify with the control plane\'s key');
    let env: ControlEnvelopeOut;
    try {
      env = decodeMessage<ControlEnvelopeOut>('ControlEnvelope', payload);
    } catch {
      return this.refuse('a signed control message that does not decode');
    }
    if (env.agent !== this.agent) return this.refuse(`a control message for agent "${env.agent}"`);
    if (!(env.counter > this.last)) return this.refuse(`a replayed control message (counter ${env.counter}, already at ${this.last})`);
    const inner = env.message;
    if (!inner || !CONTROL_BODIES.has(inner.body ?? '')) return this.refuse(`a signed envelope holding ${inner?.body ?? 'nothing'}`);
    this.last = env.counter;
    this.scheduleSync();
    return { ok: true, message: inner };
  }

  /** Writes the counter now (on stop). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.last === this.synced || !this.file) return;
    try {
      writeSecretFile(this.file, `${this.last}\n`);
      this.synced = this.last;
    } catch {
      // A full disk: the ledger still stops a replayed Assign; try again with the next message.
    }
  }

  private scheduleSync() {
    this.timer ??= setTimeout(() => this.flush(), COUNTER_SYNC_MS);
    this.timer.unref?.();
  }

  private refuse(why: string): Verdict {
    this.rejected++;
    return { ok: false, why };
  }
}
