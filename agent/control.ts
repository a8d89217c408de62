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
import type { KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSignedControl } from '../common/control-open.js';
import { writeSecretFile } from '../common/secret-file.js';
import type { ServerMessageOut } from '../proto/index.js';

/** How often a newer counter is written to disk, at most. */
const COUNTER_SYNC_MS = 1000;

/** The bodies that must arrive signed. */
export const CONTROL_BODIES: ReadonlySet<string> = new Set(['assign', 'release', 'cancel', 'drain', 'renewed', 'runFinished']);

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
    const opened = openSignedControl(m.signed!, this.key, this.agent);
    if (!opened.ok) return this.refuse(opened.why);
    const env = opened.envelope;
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
