/**
 * Domain types of the public SDK: plain objects with lowercase string unions
 * and millisecond timestamps. Nothing here mentions protobuf; conversion from
 * the wire shapes happens in convert.ts.
 */
import type { Problem } from './errors.js';

/** Lifecycle of a run. `succeeded`, `failed` and `cancelled` are terminal. */
export type RunStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** Lifecycle of one step of a run. */
export type StepStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped' | 'cancelled';

/** Whether the control plane currently hears from an agent. */
export type AgentState = 'connected' | 'disconnected' | 'lost';

/**
 * What a step does: `run` (shell text), `command` (argv, no shell), `script`
 * (inline body with an interpreter), `http`, `file`, `sleep`, `ssh` (commands
 * on a network device through a proxy agent). `approval` is reserved for a
 * later version. In a run's steps, `group` is the row of a fan-out or forEach
 * step whose instances carry `parent`.
 */
export type StepKind = 'run' | 'command' | 'script' | 'http' | 'file' | 'sleep' | 'ssh' | 'approval' | 'group';

/** How a step's target is used: `one` matching agent, or fan out to `all` of them. */
export type TargetStrategy = 'one' | 'all';

/** Which output stream of a step process a log line came from. */
export type LogStream = 'stdout' | 'stderr';

/** `failed` includes an attempt that was retried; `lost`: its agent restarted while it ran, or was declared lost and has not reported its end since. */
export type AttemptStatus = 'running' | 'succeeded' | 'failed' | 'cancelled' | 'lost';

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
  /** The agent's journal: bytes on disk, messages not yet acknowledged, log bytes dropped at its size bound. */
  journalBytes: number;
  journalUnacked: number;
  journalDroppedLogBytes: number;
  /** Control messages the agent refused (unsigned, badly signed, for another agent, replayed) since it started. */
  rejectedControlMessages: number;
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

/** One step of a run (for fan-out and forEach steps, one entry per instance). */
export interface Step {
  /** The step id; an instance's id adds the agent or item index: `deploy[web-1]`, `notify[0]`. */
  id: string;
  /** For an instance of a fan-out or forEach: the declared step's id. Empty otherwise. */
  parent: string;
  kind: StepKind;
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
  /** Every attempt the control plane heard of, on any agent, oldest first (the last 20). */
  attempts: Attempt[];
  /** Why a pending or running step is not moving, in words ("waiting for agent assets-1, disconnected 40 s ago; lost after 60 s"); '' otherwise. */
  waiting: string;
  /** The wait is a hold-up (its agent gone, lost or draining, a queue, a maxParallel slot, no agent), not the ordinary wait for needs or for an agent that is up to start it. */
  blocked: boolean;
  /** A re-run copied this step from that run (`runs.rerun`): it did not run again, its status and outputs are that run's; '' otherwise. */
  reusedFrom: string;
  /** An approval step's gate; undefined for other kinds. */
  approval?: Approval;
}

/** An approval step's gate (docs/approvals.md). */
export interface Approval {
  /** The question put to the approvers, templates resolved when the gate opened ('' before). */
  message: string;
  /** Roles (that role and above) or token names that may decide. */
  approvers: string[];
  /** When it times out (ms since epoch); 0 before it opens, or with no timeout. */
  deadline: number;
  onTimeout: 'fail' | 'approve';
  /** '' while undecided. */
  decision: '' | 'approved' | 'rejected' | 'timed-out';
  /** The approver's token name (or id), or "timeout". */
  decidedBy: string;
  reason: string;
  /** ms since epoch; 0 while undecided. */
  decidedAt: number;
}

/** What `runs.approve()` and `runs.reject()` take. */
export interface DecideOptions {
  /** Why: kept in the step's outputs, the run's log and the audit log (at most 1000 characters). */
  reason?: string;
}

/** One attempt of a step on one agent. */
export interface Attempt {
  /** Its place in the step's history, from 1, across agents: what `logs(..., { attempt })` selects. */
  number: number;
  /** `run/step/attempt/agent`, as `LogLine.attemptId` names it. */
  id: string;
  agent: string;
  /** The attempt number as its agent counts them (each agent counts from 1). */
  agentAttempt: number;
  status: AttemptStatus;
  exitCode: number;
  /** ms since epoch, 0 if unknown. */
  startedAt: number;
  /** ms since epoch, 0 while it runs (or is lost, until its agent reports its real end). */
  endedAt: number;
  message: string;
  /**
   * Its agent was declared lost (or stopped reporting) and the step failed
   * or moved on: what it reports later is kept here but no longer decides
   * the step.
   */
  superseded: boolean;
  /** What became of it, e.g. "completed on edge-1 after the agent was declared lost". */
  note: string;
}

/** A run of a workflow. */
export interface Run {
  id: string;
  workflow: string;
  /** The registry version the run was started from; 0 when it was started from a file or document. */
  workflowVersion: number;
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
  /** Its steps by status: fan-out and forEach instances one by one, their group entries not at all. */
  stepCounts: StepCounts;
  /** What started it: "api", "webhook:NAME", "schedule:NAME", "nats:SUBJECT" or "rerun". */
  trigger: string;
  /** The idempotency key it was launched with ('' for none). */
  idempotencyKey: string;
  /** The run this one re-ran (`runs.rerun`); '' when it is not a re-run. */
  rerunOf: string;
  /** In the answer of a launch or re-run only: nothing was started, this is the run the same idempotency key started before. */
  deduplicated: boolean;
}

/** How many of a run's steps are in each status. */
export interface StepCounts {
  total: number;
  pending: number;
  running: number;
  succeeded: number;
  failed: number;
  skipped: number;
  cancelled: number;
}

/** One line a step printed. */
export interface LogLine {
  runId: string;
  stepId: string;
  attemptId: string;
  /** `Attempt.number` of the line's attempt in its step's history; 0 when the history no longer holds it. */
  attempt: number;
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

/**
 * A workflow stored in the control plane's registry: `{ ref: 'deploy' }` (the
 * latest version) or `{ ref: 'deploy@3' }`.
 */
export interface WorkflowRef {
  ref: string;
}

/** One agent a step's target matches right now. */
export interface AgentMatch {
  name: string;
  state: AgentState;
  draining: boolean;
}

/** One declared step in a plan preview. */
export interface PreviewStep {
  id: string;
  kind: StepKind;
  needs: string[];
  /** The target as text, e.g. `role=web,site in (ams,fra)`; empty when the step has none. */
  target: string;
  strategy: TargetStrategy;
  /** Every agent the target matches now, with its state. */
  matches: AgentMatch[];
  /** Instance ids a fan-out or forEach expands to now; empty for a single step. */
  instances: string[];
  /** The agent a single step would run on now; empty for a fan-out, or when none is available. */
  agent: string;
  /** The step's `when` condition; empty when it always runs. */
  when: string;
  isFinally: boolean;
  /** Instances running at once; 0 means all. */
  maxParallel: number;
  /** Failed instances tolerated before the step fails. */
  maxFailures: number;
  /** target.wait in ms: when no usable agent takes the step, the run is accepted and the step waits this long for one; 0 for none. */
  waitMs: number;
}

/** Steps that can run at the same time once the waves before them are done. */
export interface PlanWave {
  /** 0-based position. */
  index: number;
  steps: PreviewStep[];
}

/** What a run would do if it started now (`workflows.plan`). */
export interface PlanPreview {
  workflow: string;
  /** The registry version planned; 0 for a file or document. */
  version: number;
  /** Pass to `runs.launch(..., { expectPlanHash })` to start exactly this plan. */
  hash: string;
  /** Every param value bound, defaults included, as the wire carries them (text). */
  params: Record<string, string>;
  waves: PlanWave[];
  /** Problems with severity `warning` (a plan with errors rejects with InvalidWorkflowError instead). */
  warnings: Problem[];
  /**
   * Why a run of this plan would be refused now with NoMatchingAgentError:
   * a step whose every matching agent is draining, or that no agent matches
   * (and that has no target.wait: such a step is a warning, and waits).
   * Empty when it can start; the hash is then worth passing on.
   */
  blockers: Problem[];
}

/** The result of `workflows.validate`. */
export interface WorkflowValidation {
  /** The workflow's name, when it could be read; empty otherwise. */
  workflow: string;
  /** True when no problem is an error (warnings may remain). */
  valid: boolean;
  /** Errors and warnings, in document order. */
  problems: Problem[];
  /**
   * Only from the control plane (`validate(..., { remote: true })`), and only
   * when a workflow of this name is registered: its latest version, and the
   * version whose text is this document's (0 when none is: applying it
   * would store a new version).
   */
  registry?: { latest: number; sameAs: number };
}

/** A workflow in the registry: one version, with facts about all of them. */
export interface RegisteredWorkflow {
  name: string;
  /** This version's number (for `list`, the latest). Versions count from 1. */
  version: number;
  /** How many versions are stored. */
  versions: number;
  /** Hex SHA-256 of the source text. */
  hash: string;
  /** When this version was stored (ms since epoch). */
  createdAt: number;
  description: string;
  /** The document as it was applied; only `workflows.get` fills it, empty otherwise. */
  source: string;
  /** Only meaningful for `workflows.apply`: false when the content equalled the latest version. */
  changed: boolean;
  /** Only from `workflows.apply`, and only when there are some: what its triggers need that the control plane lacks (a webhook's secret not stored, NATS triggers without NATS). */
  warnings?: string[];
}

/** A registered network device (the inventory behind ssh steps). */
export interface Device {
  name: string;
  host: string;
  port: number;
  user: string;
  /** A credential *name* the proxy agents resolve locally (`--credential NAME=FILE`); never a secret. */
  credential: string;
  /** Agents labelled `proxy=<network>` reach the device. */
  network: string;
  labels: Record<string, string>;
  /** Sessions at once on a proxy agent. */
  maxSessions: number;
  /** When it was first registered (ms since epoch). */
  createdAt: number;
  /** When it was last registered or replaced (ms since epoch). */
  updatedAt: number;
  /** Agents that proxy for its network now, by name (empty: ssh steps to it are refused at submit). */
  proxies: string[];
}

/** What `devices.add` takes: everything but `name`, `host`, `user` and `credential` has a default. */
export interface DeviceSpec {
  name: string;
  host: string;
  /** Default 22. */
  port?: number;
  user: string;
  credential: string;
  /** Default `default`. */
  network?: string;
  labels?: Record<string, string>;
  /** Default 1. */
  maxSessions?: number;
}

/**
 * The four orchestration metrics of one workflow (or of every workflow, in
 * `Stats.overall`, where `workflow` is '') over a window. Definitions:
 * docs/metrics.md. Rates are 0..1; 0 when there is nothing to divide.
 */
export interface WorkflowStats {
  workflow: string;
  /** Runs that ended (succeeded, failed or cancelled) in the window. */
  runsEnded: number;
  runsSucceeded: number;
  runsFailed: number;
  runsCancelled: number;
  /** Runs pending or running now. */
  runsActive: number;
  /** runsSucceeded / runsEnded. */
  completionRate: number;
  /** Submit to end of the runs that ended, nearest-rank percentiles, ms. */
  cycleP50Ms: number;
  cycleP95Ms: number;
  cycleMaxMs: number;
  /** Step attempts of those runs, and how many failed or were lost. */
  attempts: number;
  attemptsFailed: number;
  /** attemptsFailed / attempts. */
  attemptErrorRate: number;
  /** runsFailed / runsEnded. */
  runErrorRate: number;
  /** Sum over those runs' steps. */
  cpuSeconds: number;
  /** Max over those runs' steps. */
  peakRssBytes: number;
  /** Mean fleet CPU and memory % over the stored samples taken while those runs ran. */
  fleetCpuPercent: number;
  fleetMemoryPercent: number;
  /** Equal slices of the window, oldest first. */
  trend: StatsBucket[];
}

/** One slice of a window: the runs that ended in it. */
export interface StatsBucket {
  /** Start of the slice, ms since epoch. */
  start: number;
  ended: number;
  succeeded: number;
  failed: number;
  /** Median cycle time of those runs, ms (0: none). */
  cycleP50Ms: number;
}

/** What `stats.get` returns: the window [from, to] (ms since epoch), every workflow together, and each one by name. */
export interface Stats {
  from: number;
  to: number;
  overall: WorkflowStats;
  /** Workflows with a run ended in the window or active now, by name. */
  workflows: WorkflowStats[];
}

/** True once a run can change no more. */
export function isTerminal(status: RunStatus): boolean {
  return status === 'succeeded' || status === 'failed' || status === 'cancelled';
}
