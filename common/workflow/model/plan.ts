/** The compiled plan as the control plane's domain code sees it. */
export type StepKind = 'run' | 'command' | 'script' | 'http' | 'file' | 'sleep' | 'ssh' | 'approval';

export interface LabelExpression {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values: string[];
}

export interface TargetPlan {
  labels: Record<string, string>;
  matchExpressions: LabelExpression[];
  agent: string;
  /** ssh steps: a registered device by name ('' otherwise); their labels select devices. */
  device: string;
  strategy: 'one' | 'all';
  /**
   * target.wait: how long the step may wait for a usable agent when none
   * matches (scheduler/capacity.ts). Absent (not 0) when not given, so plans
   * without it hash as before and stored plans read the same.
   */
  waitMs?: number;
}

/** One command of an ssh step. */
export interface SshCommandPlan {
  /** May hold ${{ }} templates, resolved on the agent. */
  command: string;
  /** Output key; '' means out_<index>. */
  name: string;
  /** 0: the step's commandTimeoutMs. */
  timeoutMs: number;
}

/**
 * An ssh step's device connection, resolved from the inventory (or given
 * inline), and what to run. `credential` is a reference the proxy agent
 * resolves locally: no secret is ever part of a plan.
 */
export interface SshPlan {
  /** The registered device; '' for an inline host. */
  device: string;
  host: string;
  port: number;
  user: string;
  credential: string;
  /** Agents labelled proxy=<network> can reach the device. */
  network: string;
  commands: SshCommandPlan[];
  /** '' disables the check. */
  errorPattern: string;
  mode: 'shell' | 'exec';
  prompt: string;
  commandTimeoutMs: number;
  maxSessions: number;
}

/**
 * An approval step's gate (compiler/step-plan.ts). It runs on no agent: the
 * run machine opens it once its needs are met (scheduler/approvals.ts).
 */
export interface ApprovalPlan {
  /** Roles (that role and above) or API token names. */
  approvers: string[];
  /** May hold ${{ }} (canonical form) over params and the outputs of its needs, resolved when the gate opens. */
  message: string;
  /** 0: no timeout. */
  timeoutMs: number;
  onTimeout: 'fail' | 'approve';
}

/** One executable unit: a plain step, or one instance of a fan-out or forEach. */
export interface StepPlan {
  id: string;
  /** The declared step an instance belongs to; '' for a plain step. */
  parent: string;
  /** forEach item as JSON; '' otherwise. */
  itemJson: string;
  kind: StepKind;
  needs: string[];
  run: string;
  command: string[];
  script: { interpreter: string; body: string } | null;
  http: { method: string; url: string; headers: Record<string, string>; body: string; expectStatus: number[] } | null;
  file: { path: string; content: string; mode: string; owner: string } | null;
  sleepMs: number;
  ssh: SshPlan | null;
  /** Approval steps only (absent in plans stored before approvals, and for other kinds). */
  approval?: ApprovalPlan;
  env: Record<string, string>;
  target: TargetPlan;
  /** Fixed by the compiler for strategy "all" instances; otherwise chosen by placement. */
  agent: string;
  timeoutMs: number;
  retry: { attempts: number; backoff: 'fixed' | 'exponential'; initialMs: number; maxMs: number; jitter: number; retryOn: number[] };
  when: string;
  continueOnError: boolean;
  isFinally: boolean;
  /** Stored secrets the step's expressions name: sent with it, to its agent only. */
  secrets: string[];
  /** Params declared secret that its expressions name (their values are not in the plan). */
  secretParams: string[];
}

/** A declared step that expanded into instances (fan-out or forEach). */
export interface GroupPlan {
  id: string;
  /** Fan-out over matching agents or devices (ssh steps), or forEach over items. */
  over: 'agents' | 'devices' | 'items';
  instances: string[];
  /** 0: all at once. */
  maxParallel: number;
  maxFailures: number;
  needs: string[];
  continueOnError: boolean;
  isFinally: boolean;
}

export interface RunPlan {
  workflow: string;
  hash: string;
  /** Bound params as strings (the wire form). */
  params: Record<string, string>;
  /** Bound params with their declared types, as JSON. */
  paramsJson: string;
  deadlineMs: number;
  concurrency: 'allow' | 'queue' | 'skip';
  onAgentLost: 'wait' | 'retry' | 'fail';
  steps: StepPlan[];
  groups: GroupPlan[];
}

/**
 * A trigger of a registered workflow, compiled (compiler/triggers.ts). CEL
 * mappings are checked expressions over the event: `body` (the JSON body)
 * and, for webhooks, `headers` (lower-case names); for NATS, `subject`.
 */
export type TriggerPlan = WebhookTrigger | CronTrigger | NatsTrigger;

export interface WebhookTrigger {
  kind: 'webhook';
  /** Served at POST /hooks/<name>. */
  name: string;
  /** The stored secret whose value signs requests. */
  secret: string;
  /** Param name -> CEL expression. */
  params: Record<string, string>;
  /** CEL expression; '' for none. */
  idempotencyKey: string;
  toleranceMs: number;
}

export interface CronTrigger {
  kind: 'cron';
  /** Its `name`, else the workflow's name (then NAME-2, NAME-3, ... for further schedules). */
  name: string;
  cron: string;
  /** IANA zone; 'UTC' when none was given. */
  timezone: string;
  catchup: 'none' | 'latest' | 'all';
  /** The params of each run, as strings (the wire form SubmitRun takes). */
  params: Record<string, string>;
}

export interface NatsTrigger {
  kind: 'nats';
  /** `nats:<subject>` names it in a run's trigger. */
  subject: string;
  params: Record<string, string>;
  idempotencyKey: string;
}
