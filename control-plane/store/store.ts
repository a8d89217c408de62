/**
 * The control plane's state behind one interface. Records are plain objects
 * owned by the store: mutate a record you got, then `put` it to mark it dirty.
 * Writes are coalesced; `flush()` resolves once everything put so far is on
 * disk (the control plane acknowledges agent messages only after that).
 */
import type { RunPlan } from '../compiler/plan.js';

export type RunStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export type StepStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped' | 'cancelled';

export const TERMINAL_STEP: ReadonlySet<StepStatus> = new Set(['succeeded', 'failed', 'skipped', 'cancelled']);
export const TERMINAL_RUN: ReadonlySet<RunStatus> = new Set(['succeeded', 'failed', 'cancelled']);

export interface AgentFacts {
  hostname: string;
  os: string;
  osRelease: string;
  arch: string;
  cpuModel: string;
  cpuCount: number;
  memoryBytes: number;
  disks: { mount: string; fs: string; sizeBytes: number }[];
  ipAddresses: string[];
  agentVersion: string;
}

export interface AgentRecord {
  name: string;
  labels: Record<string, string>;
  facts: AgentFacts;
  firstSeenMs: number;
  lastSeenMs: number;
  /** Highest message seq from this agent applied to the state. */
  appliedSeq: number;
  draining: boolean;
}

export interface StepRecord {
  id: string;
  agent: string;
  status: StepStatus;
  attempt: number;
  exitCode: number;
  startedMs: number;
  endedMs: number;
  cpuSeconds: number;
  peakRssBytes: number;
  outputs: Record<string, string>;
  message: string;
}

export interface RunRecord {
  id: string;
  workflow: string;
  status: RunStatus;
  createdMs: number;
  startedMs: number;
  endedMs: number;
  params: Record<string, string>;
  message: string;
  cancelRequested: boolean;
  plan: RunPlan;
  steps: Record<string, StepRecord>;
}

export interface LogRecord {
  /** time, ms */
  t: number;
  step: string;
  attempt: string;
  agent: string;
  stream: 'stdout' | 'stderr';
  text: string;
}

export interface Store {
  /** Loads state; throws StoreError naming the file and the fix when it cannot. */
  open(): Promise<void>;
  getAgent(name: string): AgentRecord | undefined;
  listAgents(): AgentRecord[];
  putAgent(agent: AgentRecord): void;
  getRun(id: string): RunRecord | undefined;
  /** Newest first. */
  listRuns(): RunRecord[];
  putRun(run: RunRecord): void;
  appendLog(runId: string, record: LogRecord): void;
  /**
   * Every log record of a run so far. The snapshot is taken when called,
   * before the promise yields, so a change subscriber registered just before
   * sees each later record exactly once.
   */
  readLogs(runId: string): Promise<LogRecord[]>;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export class StoreError extends Error {
  override name = 'StoreError';
  readonly code = 'STORE_UNREADABLE';
}
