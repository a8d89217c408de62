/**
 * Checks control messages before the agent acts on them (DESIGN.md §7):
 * Assign, Release, Cancel, Drain, Renewed and RunFinished count only inside a
 * SignedControl whose Ed25519 signature verifies with the key received at
 * enrollment, that names this agent, and whose (epoch, counter) is above
 * every one seen so far. So a broker, a relay or another NATS client cannot
 * make the agent run anything, a recorded message cannot be played again,
 * and a leader that was deposed (its epoch is below the one a newer leader
 * sealed with) can make it do nothing.
 *
 * The highest of both is kept in <state-dir>/identity/control-counter,
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
  /** The highest leader epoch accepted (0: a single control plane). */
  private epoch: number;
  /** What the file holds: `COUNTER\nEPOCH\n`. */
  private synced: string;
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
    // "COUNTER\nEPOCH\n"; a file from before epochs has the counter only.
    const [counter, epoch] = this.file && existsSync(this.file) ? readFileSync(this.file, 'utf8').split('\n') : [];
    this.last = Number(counter) || 0;
    this.epoch = Number(epoch) || 0;
    this.synced = this.record();
  }

  private record(): string {
    return `${this.last}\n${this.epoch}\n`;
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
    const epoch = Number(env.epoch) || 0;
    if (epoch < this.epoch) {
      return this.refuse(
        `a control message from a deposed leader (epoch ${epoch}; a leader at epoch ${this.epoch} took over since). If the replicas were replaced by a control plane with another store, stop the agent, delete ${this.file ?? 'identity/control-counter'} and start it again`,
      );
    }
    // A new leader's counter starts from its own clock: within an epoch it must grow, across epochs the epoch decides.
    if (epoch === this.epoch && !(env.counter > this.last)) return this.refuse(`a replayed control message (counter ${env.counter}, already at ${this.last})`);
    const inner = env.message;
    if (!inner || !CONTROL_BODIES.has(inner.body ?? '')) return this.refuse(`a signed envelope holding ${inner?.body ?? 'nothing'}`);
    this.epoch = epoch;
    this.last = env.counter;
    this.scheduleSync();
    return { ok: true, message: inner };
  }

  /** Writes the counter now (on stop). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const record = this.record();
    if (record === this.synced || !this.file) return;
    try {
      writeSecretFile(this.file, record);
      this.synced = record;
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
