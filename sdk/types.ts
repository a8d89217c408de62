/**
 * Domain types of the public SDK: plain objects with lowercase string unions
 * and millisecond timestamps. Nothing here mentions protobuf; conversion from
 * the wire shapes happens in convert.ts.
 */

/** Lifecycle of a run. `succeeded`, `failed` and `cancelled` are terminal. */
export type RunStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** Lifecycle of one step of a run. */
export type StepStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped' | 'cancelled';

/** Whether the control plane currently hears from an agent. */
export type AgentState = 'connected' | 'disconnected' | 'lost';

/** Which output stream of a step process a log line came from. */
export type LogStream = 'stdout' | 'stderr';

/** A disk an agent reported. */
export interface Disk {
  mount: string;
  fs: string;
  sizeBytes: number;
}

/** What an agent reported about its host when it connected. */
export interface Facts {
  hostname: string;
  os: string;
  osRelease: string;
  arch: string;
  cpuModel: string;
  cpuCount: number;
  memoryBytes: number;
  disks: Disk[];
  ipAddresses: string[];
  agentVersion: string;
}

/** The latest resource sample an agent sent. */
export interface Heartbeat {
  /** When the agent took the sample (ms since epoch). */
  at: number;
  cpuPercent: number;
  memoryPercent: number;
  memoryUsedBytes: number;
  memoryTotalBytes: number;
  diskPercent: number;
  /** 1, 5 and 15 minute load averages. */
  load: number[];
  netRxBytesPerSec: number;
  netTxBytesPerSec: number;
  runningSteps: number;
}

/** An agent as the control plane sees it. */
export interface Agent {
  name: string;
  state: AgentState;
  labels: Record<string, string>;
  /** Absent until the agent has said hello. */
  facts?: Facts;
  /** Absent until the first heartbeat. */
  heartbeat?: Heartbeat;
  /** Last time the control plane heard from the agent (ms since epoch, 0 if never). */
  lastSeen: number;
  /** Start of the current connection (ms since epoch, 0 when disconnected). */
  connectedSince: number;
  draining: boolean;
  runningSteps: number;
  /** `grpc` or `nats`. */
  transport: string;
  /** Remote address of the agent's connection, when known. */
  peer: string;
}

/** One step of a run (for fan-out steps, one entry per agent). */
export interface Step {
  id: string;
  /** The agent running the step; empty until it is placed. */
  agent: string;
  status: StepStatus;
  attempt: number;
  exitCode: number;
  /** ms since epoch, 0 if not started. */
  startedAt: number;
  /** ms since epoch, 0 if not ended. */
  endedAt: number;
  cpuSeconds: number;
  peakRssBytes: number;
  outputs: Record<string, string>;
  /** Why the step failed, was skipped or was cancelled. */
  message: string;
  needs: string[];
  /** True for steps of the workflow's `finally` block. */
  isFinally: boolean;
}

/** A run of a workflow. */
export interface Run {
  id: string;
  workflow: string;
  status: RunStatus;
  /** ms since epoch. */
  createdAt: number;
  /** ms since epoch, 0 if not started. */
  startedAt: number;
  /** ms since epoch, 0 while running. */
  endedAt: number;
  params: Record<string, string>;
  planHash: string;
  message: string;
  steps: Step[];
}

/** One line a step printed. */
export interface LogLine {
  runId: string;
  stepId: string;
  attemptId: string;
  agent: string;
  stream: LogStream;
  /** The line, without its terminator. */
  text: string;
  /** ms since epoch. */
  at: number;
}

/** What `RunHandle.events()` yields: a run snapshot, a step change or a log line. */
export type RunEvent =
  | { type: 'run'; run: Run }
  | { type: 'step'; step: Step }
  | { type: 'log'; line: LogLine };

/** A value a workflow parameter accepts from the SDK; arrays travel JSON-encoded. */
export type ParamValue = string | number | boolean | string[];

/** Parameters of a run, by name. */
export type Params = Record<string, ParamValue>;

/** A workflow document given as an object (the same shape as the YAML). */
export type WorkflowDocument = Record<string, unknown>;

/** True once a run can change no more. */
export function isTerminal(status: RunStatus): boolean {
  return status === 'succeeded' || status === 'failed' || status === 'cancelled';
}
