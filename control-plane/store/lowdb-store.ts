/**
 * The embedded default Store: one JSON document (lowdb) in the data dir plus
 * per-run log files. Puts mark the document dirty; one write at a time runs,
 * at most every `coalesceMs`, carrying every change made before it started.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Low } from 'lowdb';
import { DurableJsonFile } from './durable-json-file.js';
import { LogFiles } from './log-files.js';
import { TERMINAL_RUN, type AgentRecord, type LogRecord, type RunRecord, type Store, type WorkflowVersion } from './store.js';

interface Doc {
  version: 1;
  agents: Record<string, AgentRecord>;
  runs: Record<string, RunRecord>;
  workflows: Record<string, WorkflowVersion[]>;
}

export interface LowdbStoreOptions {
  dataDir: string;
  /** Delay that lets many changes share one write. */
  coalesceMs?: number;
  /** Finished runs kept (with their logs); older ones are pruned. */
  maxRuns?: number;
}

export class LowdbStore implements Store {
  private db: Low<Doc>;
  private file: DurableJsonFile<Doc>;
  private logs: LogFiles;
  private changed = 0;
  private written = 0;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private waiters: { gen: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private readonly coalesceMs: number;
  private readonly maxRuns: number;

  constructor(opts: LowdbStoreOptions) {
    mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    this.file = new DurableJsonFile<Doc>(join(opts.dataDir, 'state.json'));
    this.db = new Low<Doc>(this.file, { version: 1, agents: {}, runs: {}, workflows: {} });
    this.logs = new LogFiles(join(opts.dataDir, 'logs'));
    this.coalesceMs = opts.coalesceMs ?? 10;
    this.maxRuns = opts.maxRuns ?? 1000;
  }

  /** Loads the state; returns a description when it had to recover from the backup, else ''. */
  async open(): Promise<string> {
    await this.db.read();
    this.db.data.workflows ??= {};
    return this.file.recovered;
  }

  getAgent(name: string) {
    return this.db.data.agents[name];
  }
  listAgents() {
    return Object.values(this.db.data.agents);
  }
  putAgent(agent: AgentRecord) {
    this.db.data.agents[agent.name] = agent;
    this.touch();
  }
  getRun(id: string) {
    return this.db.data.runs[id];
  }
  listRuns() {
    return Object.values(this.db.data.runs).sort((a, b) => b.createdMs - a.createdMs || (a.id < b.id ? 1 : -1));
  }
  putRun(run: RunRecord) {
    this.db.data.runs[run.id] = run;
    this.touch();
  }
  workflowVersions(name: string) {
    return [...(this.db.data.workflows[name] ?? [])];
  }
  workflowNames() {
    return Object.keys(this.db.data.workflows).sort();
  }
  putWorkflowVersion(v: WorkflowVersion) {
    (this.db.data.workflows[v.name] ??= []).push(v);
    this.touch();
  }
  appendLog(runId: string, record: LogRecord) {
    this.logs.append(runId, record);
    this.touch();
  }
  async readLogs(runId: string) {
    return this.logs.read(runId);
  }

  flush(): Promise<void> {
    if (this.written >= this.changed) return Promise.resolve();
    const gen = this.changed;
    return new Promise((resolve, reject) => {
      this.waiters.push({ gen, resolve, reject });
      clearTimeout(this.timer);
      this.timer = undefined;
      void this.writeLoop();
    });
  }

  async close() {
    clearTimeout(this.timer);
    await this.flush();
    await this.writing;
    this.logs.close();
  }

  private touch() {
    this.changed++;
    if (!this.timer && !this.writing) this.timer = setTimeout(() => void this.writeLoop(), this.coalesceMs);
  }

  private async writeLoop() {
    this.timer = undefined;
    if (this.writing) return this.writing;
    let failed = false;
    this.writing = (async () => {
      while (this.written < this.changed) {
        const gen = this.changed;
        try {
          this.prune();
          await this.logs.sync();
          await this.db.write();
          this.written = gen;
          this.settle((w) => w.gen <= gen, (w) => w.resolve());
        } catch (err) {
          failed = true;
          this.settle(() => true, (w) => w.reject(err));
          break;
        }
      }
    })();
    try {
      await this.writing;
    } finally {
      this.writing = undefined;
      // Changes made while the last write was finishing start the next one;
      // after a failure, the next put or flush retries.
      if (!failed && this.written < this.changed) this.timer ??= setTimeout(() => void this.writeLoop(), this.coalesceMs);
    }
  }

  private settle(pick: (w: (typeof this.waiters)[number]) => boolean, act: (w: (typeof this.waiters)[number]) => void) {
    const done = this.waiters.filter(pick);
    this.waiters = this.waiters.filter((w) => !pick(w));
    done.forEach(act);
  }

  /** Drops the oldest finished runs beyond maxRuns, and their logs. */
  private prune() {
    const runs = Object.values(this.db.data.runs);
    if (runs.length <= this.maxRuns) return;
    const finished = runs.filter((r) => TERMINAL_RUN.has(r.status)).sort((a, b) => a.createdMs - b.createdMs);
    for (const r of finished.slice(0, runs.length - this.maxRuns)) {
      delete this.db.data.runs[r.id];
      this.logs.remove(r.id);
    }
  }
}
