/**
 * Simulated fleets spread over several processes (sim-child.ts), so that the
 * simulator is not what limits a 10,000-agent measurement.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { SimChildConfig, SimChildStats } from './sim-child.js';
import { sample, waitFor } from './procs.js';

const CHILD = join(import.meta.dirname, 'sim-child.ts');

export interface SimPoolOptions {
  transport: 'grpc' | 'nats';
  address: string;
  count: number;
  /** Simulator processes; agents are split evenly over them. */
  processes: number;
  prefix: string;
  labels: Record<string, string>;
  /** Spread the first connections over this many ms (see SimOptions.rampMs). */
  rampMs?: number;
  /** Where the simulated agents enroll (the control plane's gRPC address) and with what token. */
  enrollAddress: string;
  enrollToken: string;
}

export class SimPool {
  private children: ChildProcess[] = [];
  private waiting = new Map<ChildProcess, (s: SimChildStats) => void>();

  private constructor(readonly opts: SimPoolOptions) {}

  /** Starts the simulator processes; their agents start connecting at once. */
  static async start(opts: SimPoolOptions): Promise<SimPool> {
    const pool = new SimPool(opts);
    const per = Math.ceil(opts.count / opts.processes);
    const ready: Promise<void>[] = [];
    for (let i = 0, left = opts.count; left > 0; i++, left -= per) {
      const cfg: SimChildConfig = {
        transport: opts.transport,
        address: opts.address,
        count: Math.min(per, left),
        prefix: `${opts.prefix}${i}-`,
        labels: opts.labels,
        rampMs: opts.rampMs ?? 0,
        enrollAddress: opts.enrollAddress,
        enrollToken: opts.enrollToken,
      };
      const child = fork(CHILD, [JSON.stringify(cfg)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      pool.children.push(child);
      child.on('message', (m: SimChildStats | { type: 'ready' }) => {
        if (m.type === 'stats') {
          pool.waiting.get(child)?.(m);
          pool.waiting.delete(child);
        }
      });
      ready.push(
        new Promise((res, rej) => {
          child.once('message', () => res());
          child.once('exit', (code) => rej(new Error(`simulator process exited (${code}) before it started`)));
        }),
      );
    }
    await Promise.all(ready);
    return pool;
  }

  /** Names of the simulated agents: `${prefix}${process}-${index}`. */
  firstAgent(): string {
    return `${this.opts.prefix}0-0`;
  }

  pids(): number[] {
    return this.children.map((c) => c.pid!);
  }

  /** CPU seconds used by every simulator process so far. */
  cpuSeconds(): number {
    return this.pids().reduce((sum, pid) => sum + sample(pid).cpuSeconds, 0);
  }

  async stats(): Promise<Omit<SimChildStats, 'type'>> {
    const all = await Promise.all(
      this.children.map(
        (c) =>
          new Promise<SimChildStats>((res) => {
            this.waiting.set(c, res);
            c.send({ type: 'stats' });
          }),
      ),
    );
    return all.reduce((a, s) => ({ connected: a.connected + s.connected, welcomes: a.welcomes + s.welcomes, stepsRun: a.stepsRun + s.stepsRun, resent: a.resent + s.resent }), {
      connected: 0,
      welcomes: 0,
      stepsRun: 0,
      resent: 0,
    });
  }

  /** Resolves once every simulated agent has a Welcome; returns how long that took. */
  async connected(timeoutMs: number): Promise<number> {
    const t0 = Date.now();
    let last = 0;
    await waitFor(
      async () => (last = (await this.stats()).connected) >= this.opts.count,
      timeoutMs,
      () => `${this.opts.count} simulated ${this.opts.transport} agents to connect (${last} so far)`,
      200,
    );
    return Date.now() - t0;
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.children.map(
        (c) =>
          new Promise<void>((res) => {
            if (c.exitCode !== null || c.signalCode !== null) return res();
            const t = setTimeout(() => c.kill('SIGKILL'), 5000);
            c.once('exit', () => {
              clearTimeout(t);
              res();
            });
            c.send({ type: 'stop' });
          }),
      ),
    );
  }
}
