/**
 * The typed workflow builder: TypeScript types for the workflow document and
 * a fluent builder that emits the same plain object a YAML file parses to.
 *
 * ```ts
 * const deploy = workflow('deploy-web')
 *   .describe('Roll a release out to the web tier')
 *   .param('version', { type: 'string', pattern: '^v[0-9.]+$' })
 *   .env({ VERSION: '${{ params.version }}' })
 *   .step({ id: 'build', run: 'make release', target: { labels: { role: 'builder' } } })
 *   .step({ id: 'ship', needs: ['build'], command: ['./ship', '${{ params.version }}'],
 *           target: { labels: { role: 'web' }, strategy: 'all', maxParallel: 1 } })
 *   .finally({ id: 'notify', http: { method: 'POST', url: 'https://hooks.example/deployed' } })
 *   .build();
 * await drover.runs.launch(deploy, { version: 'v1.4.2' });
 * ```
 *
 * The builder checks nothing beyond these types: the control plane's compiler
 * is the one validator, so a document built here and the equivalent YAML get
 * the same errors and compile to the same plan (and plan hash).
 */

/** Seconds as a number, or text: `"250ms"`, `"30s"`, `"5m"`, `"1h30m"`. */
export type Duration = string | number;

/** A value in `env`; may hold `${{ expr }}` templates. */
export type EnvValue = string | number | boolean;

interface ParamCommon {
  description?: string;
  /** Default: true unless a default is given. */
  required?: boolean;
}

/**
 * A workflow parameter, by its `type` (default `string`). `pattern` is a
 * regular expression in RE2 syntax (no lookaround or backreferences; see
 * docs/security.md#patterns) that string values must match.
 */
export type ParamSpec =
  | (ParamCommon & { type?: 'string'; default?: string; enum?: string[]; pattern?: string })
  | (ParamCommon & { type: 'number'; default?: number; enum?: number[] })
  | (ParamCommon & { type: 'boolean'; default?: boolean })
  | (ParamCommon & { type: 'list'; default?: string[]; enum?: string[]; pattern?: string });

/** A set-based label selector: `In`/`NotIn` take values, `Exists`/`DoesNotExist` do not. */
export type LabelExpression =
  | { key: string; operator: 'In' | 'NotIn'; values: string[] }
  | { key: string; operator: 'Exists' | 'DoesNotExist'; values?: never };

/** Where a step runs. */
export interface TargetSpec {
  /** Equality selector: every label must match the agent's. */
  labels?: Record<string, string>;
  /** Set-based selectors; all must match. */
  matchExpressions?: LabelExpression[];
  /** A specific agent by name. */
  agent?: string;
  /** ssh steps: a registered device by name. An ssh step's `labels` and `matchExpressions` select devices, not agents. */
  device?: string;
  /** `one` (default): the least-loaded matching agent (ssh steps: the one matching device); `all`: fan out to every matching agent (device). */
  strategy?: 'one' | 'all';
  /** Instances running at once (strategy `all`, forEach). */
  maxParallel?: number;
  /** Failed instances tolerated: a count, or a share like `"25%"`. */
  maxFailures?: number | `${number}%`;
  /**
   * When no usable agent matches (none, or all draining), the run is accepted
   * and the step waits up to this long, from when its needs are done, for one
   * to join or stop draining; then it fails. Not with strategy `all`.
   */
  wait?: Duration;
}

/** How a failed step is tried again. */
export interface RetrySpec {
  /** Total attempts, including the first. */
  attempts: number;
  backoff?: 'fixed' | 'exponential';
  initial?: Duration;
  max?: Duration;
  /** Random extra delay, as a fraction (0-1) of the delay. */
  jitter?: number;
  /** Exit codes that allow a retry; default: any failure. */
  retryOn?: number[];
}

/** An inline script: its text (run by /bin/sh), or a body with an interpreter. */
export type ScriptSpec = string | { interpreter?: string; body: string };

/** An HTTP request made by the agent. */
export interface HttpSpec {
  method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  headers?: Record<string, string>;
  body?: string;
  /** Accepted status codes; default 200-299. */
  expect?: number | number[];
}

/** A file written by the agent, inside one of its allowed roots. */
export interface FileSpec {
  path: string;
  content: string;
  /** Octal permission bits, e.g. `"0644"`; a number is read as its octal digits (`644`, never `0o644`). */
  mode?: string | number;
  /** `"user"` or `"user:group"`. */
  owner?: string;
}

/** One command of an ssh step: its line, or the line with an output name and a timeout. */
export type SshCommandSpec = string | { command: string; name?: string; timeout?: Duration };

/**
 * Commands on a network device over SSH, run by a proxy agent for the
 * device's network. Name a registered device (`device`, or select devices
 * with the step's `target`), or give an inline `host` with `user` and a
 * `credential` name (never a secret). See docs/devices.md.
 */
export interface SshSpec {
  device?: string;
  host?: string;
  port?: number;
  user?: string;
  credential?: string;
  network?: string;
  commands: SshCommandSpec[];
  /** An output line matching this regular expression (RE2 syntax) fails the step; `""` disables the check. */
  errorPattern?: string;
  /** `shell` (default): one interactive session, prompt-delimited; `exec`: one SSH exec per command. */
  mode?: 'shell' | 'exec';
  /** Shell mode: a regular expression (RE2 syntax) the device's prompt matches. */
  prompt?: string;
  /** Per-command timeout (default 30s). */
  commandTimeout?: Duration;
}

/**
 * An approval gate: the run waits here, on no agent, until one of
 * `approvers` decides (`runs.approve()`, `drover approve`). A gate takes no
 * target, env, secrets, retry, forEach or step timeout. See docs/approvals.md.
 */
export interface ApprovalSpec {
  /** Roles (that role and above may decide) or API token names. */
  approvers: string[];
  /** The question; may hold `${{ }}` over params and the outputs of steps in `needs`. */
  message?: string;
  /** How long it waits for a decision (default: no limit). */
  timeout?: Duration;
  /** What a timeout does: fail the step (default) or approve it. */
  onTimeout?: 'fail' | 'approve';
}

/** What each step kind takes. */
export interface StepKinds {
  /** Shell text for `/bin/sh -c`. Never put `${{ }}` here: pass values through `env`. */
  run: string;
  /** argv, run without a shell; elements may hold `${{ }}` (they stay data). */
  command: string[];
  script: ScriptSpec;
  http: HttpSpec;
  file: FileSpec;
  sleep: Duration;
  ssh: SshSpec;
  approval: ApprovalSpec;
}

/** The name of a step kind. */
export type StepKindName = keyof StepKinds;

/** Exactly one kind field: the chosen one required, the others absent. */
type OneKind<K extends StepKindName> = { [P in K]: StepKinds[P] } & { [P in Exclude<StepKindName, K>]?: never };

/** Fields every step kind shares. Outputs are not declared: a step writes them to `$DROVER_OUTPUT`. */
export interface StepCommon {
  /** Letters, digits, `-` and `_`, starting with a letter; unique in the workflow. */
  id: string;
  /** A display name. */
  name?: string;
  /** Steps that must succeed first. */
  needs?: string[];
  env?: Record<string, EnvValue>;
  target?: TargetSpec;
  /** An expression giving a list (e.g. `${{ params.hosts }}`): one instance per item, as `item`. */
  forEach?: string;
  timeout?: Duration;
  retry?: RetrySpec;
  /** A CEL condition; false skips the step. */
  when?: string;
  /** A failure of this step does not fail the run. */
  continueOnError?: boolean;
}

/** One step: the shared fields plus exactly one of run, command, script, http, file, sleep, ssh, approval. */
export type StepSpec = StepCommon &
  (OneKind<'run'> | OneKind<'command'> | OneKind<'script'> | OneKind<'http'> | OneKind<'file'> | OneKind<'sleep'> | OneKind<'ssh'> | OneKind<'approval'>);

/** What a new run does while one of the same workflow is active. */
export type ConcurrencyMode = 'allow' | 'queue' | 'skip';

/** What happens to steps on an agent that is lost. */
export type AgentLostPolicy = 'wait' | 'retry' | 'fail';

/** A workflow document: the same shape as the YAML or JSON file. */
export type WorkflowDefinition = {
  /** Lower-case letters, digits, `.`, `-` and `_`. */
  name: string;
  description?: string;
  params?: Record<string, ParamSpec>;
  /** Environment for every step. */
  env?: Record<string, EnvValue>;
  /** The whole run must finish within this. */
  deadline?: Duration;
  concurrency?: ConcurrencyMode;
  onAgentLost?: AgentLostPolicy;
  steps: StepSpec[];
  /** Steps that run after all others, whatever happened. */
  finally?: StepSpec[];
};

/**
 * Builds a workflow document step by step. Every method returns the builder
 * and keeps a copy of what it is given (changing a step object afterwards
 * does not change the workflow); `build()` returns a fresh plain object each
 * time.
 */
export class WorkflowBuilder {
  private description: string | undefined;
  private readonly params: Record<string, ParamSpec> = {};
  private readonly envVars: Record<string, EnvValue> = {};
  private deadlineValue: Duration | undefined;
  private concurrencyMode: ConcurrencyMode | undefined;
  private agentLost: AgentLostPolicy | undefined;
  private readonly stepList: StepSpec[] = [];
  private readonly finallyList: StepSpec[] = [];

  constructor(private readonly name: string) {}

  /** Sets the description. */
  describe(text: string): this {
    this.description = text;
    return this;
  }

  /** Declares a param (a second call with the same name replaces it). */
  param(name: string, spec: ParamSpec = {}): this {
    this.params[name] = structuredClone(spec);
    return this;
  }

  /** Adds workflow-wide environment variables (merged over earlier calls). */
  env(vars: Record<string, EnvValue>): this {
    Object.assign(this.envVars, structuredClone(vars));
    return this;
  }

  /** Sets the run's deadline. */
  deadline(duration: Duration): this {
    this.deadlineValue = duration;
    return this;
  }

  /** Sets what a new run does while another is active (`allow` when unset). */
  concurrency(mode: ConcurrencyMode): this {
    this.concurrencyMode = mode;
    return this;
  }

  /** Sets what happens to steps on a lost agent. */
  onAgentLost(policy: AgentLostPolicy): this {
    this.agentLost = policy;
    return this;
  }

  /** Appends steps, in order. */
  step(...steps: StepSpec[]): this {
    this.stepList.push(...structuredClone(steps));
    return this;
  }

  /** Appends `finally` steps, in order. */
  finally(...steps: StepSpec[]): this {
    this.finallyList.push(...structuredClone(steps));
    return this;
  }

  /** The document, with fields in the usual YAML order and unset ones left out. */
  build(): WorkflowDefinition {
    const doc: Partial<WorkflowDefinition> = { name: this.name };
    if (this.description !== undefined) doc.description = this.description;
    if (Object.keys(this.params).length) doc.params = this.params;
    if (Object.keys(this.envVars).length) doc.env = this.envVars;
    if (this.deadlineValue !== undefined) doc.deadline = this.deadlineValue;
    if (this.concurrencyMode !== undefined) doc.concurrency = this.concurrencyMode;
    if (this.agentLost !== undefined) doc.onAgentLost = this.agentLost;
    doc.steps = this.stepList;
    if (this.finallyList.length) doc.finally = this.finallyList;
    // A fresh copy each time: changing the result does not change the builder.
    return structuredClone(doc as WorkflowDefinition);
  }
}

/** Starts a workflow document named `name`. */
export function workflow(name: string): WorkflowBuilder {
  return new WorkflowBuilder(name);
}
