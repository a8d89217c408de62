/**
 * The proxy agent's SSH sessions to devices, shared by the ssh steps it runs.
 *
 * Per device (host:port) at most `maxSessions` steps run at once (1 unless
 * the inventory says otherwise: many devices allow few sessions and mix up
 * parallel configuration); further steps wait in a first-come queue.
 *
 * A session is kept open after a step for the rest of its run (or until idle
 * for `idleMs`), and the next step of the same run to the same device, user
 * and credential reuses it: a sequence of steps costs one login. Sessions of
 * a run are closed when the agent has finished its part of the run. Opening a
 * session for another run first closes an idle one, so a device never has
 * more than `maxSessions` sessions from this agent.
 */
import type { Logger } from '../../log.js';
import { resolveCredential, suppliedCredential, type Credential, type CredentialSources } from './credentials.js';
import { DeviceSession, SshError, type DeviceAddress, type HostKeyPolicy } from './session.js';

export interface PoolOptions {
  agentName: string;
  credentials: CredentialSources;
  hostKeys: HostKeyPolicy;
  /** Gives up on a device that does not finish the SSH handshake in this time. */
  connectTimeoutMs: number;
  /** A session unused for this long is closed, even while its run goes on. */
  idleMs: number;
  log: Logger;
}

/** A device as an ssh step names it. */
export interface DeviceTarget extends DeviceAddress {
  credential: string;
  maxSessions: number;
  /** The credential as the control plane sent it with the step (a stored secret); absent: the agent's own files. */
  supplied?: { text: string; passphrase?: string };
}

/** A session lent to one step; give it back with release(). */
export interface Lease {
  session: DeviceSession;
  credential: Credential;
  /** The session was opened by an earlier step of the run. */
  reused: boolean;
  /** `reusable` false (a command timed out, the step was cancelled) closes the session. */
  release(reusable: boolean): void;
}

interface Pooled {
  session: DeviceSession;
  runId: string;
  credential: string;
  busy: boolean;
  /** The run ended on this agent while the session was lent: close it when it comes back. */
  runEnded: boolean;
  idleTimer?: NodeJS.Timeout;
}

interface Device {
  limit: number;
  /** Steps holding a slot. */
  busy: number;
  waiters: (() => void)[];
  sessions: Pooled[];
}

export class DevicePool {
  private devices = new Map<string, Device>();

  constructor(private readonly opts: PoolOptions) {}

  /**
   * Waits for a slot on the device, then lends a session of this run (or a
   * new one). `onWait` is called once when the step has to queue. Rejects
   * with a CredentialError or an SshError.
   */
  async acquire(runId: string, target: DeviceTarget, signal: AbortSignal, onWait: (busy: number) => void): Promise<Lease> {
    const credential = target.supplied
      ? suppliedCredential(target.credential, target.supplied.text, target.supplied.passphrase)
      : resolveCredential(target.credential, this.opts.credentials, this.opts.agentName);
    const key = `${target.host}:${target.port}`;
    let dev = this.devices.get(key);
    if (!dev) this.devices.set(key, (dev = { limit: 1, busy: 0, waiters: [], sessions: [] }));
    dev.limit = Math.max(1, target.maxSessions || 1);
    await this.slot(dev, signal, onWait);

    dev.sessions = dev.sessions.filter((p) => p.session.open);
    const idle = dev.sessions.find(
      (p) => !p.busy && p.runId === runId && p.credential === target.credential && p.session.address.user === target.user,
    );
    if (idle) {
      clearTimeout(idle.idleTimer);
      idle.busy = true;
      this.opts.log.debug({ device: target.label, session: idle.session.id, run: runId }, 'reusing SSH session');
      return this.lease(dev, idle, credential, true);
    }
    // Room for a new session: idle sessions of other runs go first, and are gone before the new one opens.
    const closing: Promise<void>[] = [];
    for (const p of [...dev.sessions]) {
      if (dev.sessions.length < dev.limit) break;
      if (!p.busy) closing.push(this.drop(dev, p));
    }
    await Promise.all(closing);
    let session: DeviceSession;
    try {
      session = await DeviceSession.connect(target, credential, this.opts.hostKeys, this.opts.connectTimeoutMs);
    } catch (err) {
      this.freeSlot(dev);
      throw err;
    }
    if (signal.aborted) {
      void session.close();
      this.freeSlot(dev);
      throw new SshError('CANCELLED', 'cancelled');
    }
    this.opts.log.debug({ device: target.label, session: session.id, run: runId }, 'SSH session opened');
    const pooled: Pooled = { session, runId, credential: target.credential, busy: true, runEnded: false };
    dev.sessions.push(pooled);
    return this.lease(dev, pooled, credential, false);
  }

  /** The agent finished its part of a run: its sessions close (lent ones when they come back). */
  endRun(runId: string) {
    for (const dev of this.devices.values()) {
      for (const p of [...dev.sessions]) {
        if (p.runId !== runId) continue;
        if (p.busy) p.runEnded = true;
        else this.drop(dev, p);
      }
    }
  }

  /** Closes every session (the agent is stopping). */
  closeAll() {
    for (const dev of this.devices.values()) for (const p of [...dev.sessions]) this.drop(dev, p);
  }

  /** Open sessions, for tests and the debug log. */
  get openSessions(): number {
    let n = 0;
    for (const dev of this.devices.values()) n += dev.sessions.filter((p) => p.session.open).length;
    return n;
  }

  private slot(dev: Device, signal: AbortSignal, onWait: (busy: number) => void): Promise<void> {
    if (dev.busy < dev.limit) {
      dev.busy++;
      return Promise.resolve();
    }
    onWait(dev.busy);
    return new Promise((resolve, reject) => {
      const granted = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        dev.waiters = dev.waiters.filter((w) => w !== granted);
        reject(new SshError('CANCELLED', 'cancelled'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      dev.waiters.push(granted);
    });
  }

  /** Hands the slot to the next waiter, or frees it. */
  private freeSlot(dev: Device) {
    const next = dev.waiters.shift();
    if (next) next();
    else dev.busy--;
  }

  private lease(dev: Device, p: Pooled, credential: Credential, reused: boolean): Lease {
    let released = false;
    return {
      session: p.session,
      credential,
      reused,
      release: (reusable) => {
        if (released) return;
        released = true;
        p.busy = false;
        if (!reusable || p.runEnded || !p.session.open) this.drop(dev, p);
        else {
          p.idleTimer = setTimeout(() => this.drop(dev, p), this.opts.idleMs);
          p.idleTimer.unref();
        }
        this.freeSlot(dev);
      },
    };
  }

  private drop(dev: Device, p: Pooled): Promise<void> {
    clearTimeout(p.idleTimer);
    dev.sessions = dev.sessions.filter((x) => x !== p);
    this.opts.log.debug({ device: p.session.address.label, session: p.session.id, run: p.runId }, 'SSH session closed');
    return p.session.close();
  }
}
