/**
 * The workflow document's shape: the single source for validation (here) and
 * for the JSON Schema shipped to editors (scripts/gen-schema.ts). Rules that
 * span fields live beside it: step-checks.ts (exactly one step kind), graph.ts,
 * expression-checks.ts, ssh-rules.ts.
 */
import { z } from 'zod';
import { parseDuration } from '../../duration.js';

const duration = z
  .union([z.string(), z.number()])
  .refine((v) => parseDuration(v) !== undefined, {
    message: 'not a duration: use a number of seconds or a string like "30s", "5m", "1h30m", "250ms"',
  })
  .describe('A duration: seconds as a number, or "250ms", "30s", "5m", "1h30m".');

const scalar = z.union([z.string(), z.number(), z.boolean()]);

export const stepId = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_-]{0,62}$/, 'step ids start with a letter and use letters, digits, "-" and "_" (at most 63)');

export const paramSchema = z.strictObject({
  type: z.enum(['string', 'number', 'boolean', 'list']).default('string').describe('The value type; list values are JSON lists on the command line.'),
  description: z.string().optional().describe('What the param is for.'),
  default: z.union([scalar, z.array(scalar)]).optional().describe('The value when none is given; makes the param optional.'),
  required: z.boolean().optional().describe('Default: true unless a default is given.'),
  enum: z.array(scalar).optional().describe('The allowed values.'),
  pattern: z.string().optional().describe('A regular expression (RE2 syntax: no lookaround or backreferences) string values must match.'),
  secret: z
    .boolean()
    .optional()
    .describe('The value is a secret: kept out of the plan and the run (shown as "(secret)"), sent only with the steps that use it, masked in logs and outputs. String params only; not usable in forEach.'),
});

export const labelExpressionSchema = z.strictObject({
  key: z.string().min(1).describe('The label name.'),
  operator: z
    .string()
    .refine((v) => ['in', 'notin', 'exists', 'doesnotexist'].includes(v.toLowerCase()), {
      message: 'operator must be one of In, NotIn, Exists, DoesNotExist',
    })
    .describe('In, NotIn, Exists or DoesNotExist.'),
  values: z.array(z.string()).optional().describe('For In and NotIn.'),
});

export const targetSchema = z.strictObject({
  labels: z.record(z.string(), z.string()).optional().describe('Equality selector: every label must match.'),
  matchExpressions: z.array(labelExpressionSchema).optional().describe('Set-based selectors; all must match.'),
  agent: z.string().optional().describe('Run on this agent by name.'),
  device: z.string().optional().describe('ssh steps: the registered device to drive (see `drover device list`); labels and matchExpressions of an ssh step select devices, not agents.'),
  strategy: z
    .enum(['one', 'all'])
    .optional()
    .describe('one: the least-loaded matching agent (default; for ssh steps, exactly one matching device); all: every matching agent (ssh steps: every matching device).'),
  maxParallel: z.number().int().min(1).optional().describe('Instances running at once (strategy all, forEach).'),
  maxFailures: z
    .union([z.number().int().min(0), z.string().regex(/^\d{1,3}%$/, 'a percentage like "25%"')])
    .optional()
    .describe('Failed instances tolerated: a count or a percentage like "25%".'),
  wait: duration
    .optional()
    .describe(
      'When no usable agent matches (none, or all draining), accept the run anyway and let the step wait up to this long, from when its needs are done, for one to join or stop draining; then the step fails. Not with strategy all.',
    ),
});

export const retrySchema = z.strictObject({
  attempts: z.number().int().min(1).max(100).describe('Total attempts, including the first.'),
  backoff: z.enum(['fixed', 'exponential']).optional().describe('fixed: wait `initial` each time; exponential: double it each time, up to `max`.'),
  initial: duration.optional(),
  max: duration.optional(),
  jitter: z.number().min(0).max(1).optional().describe('Random extra delay, as a fraction of the delay.'),
  retryOn: z.array(z.number().int()).optional().describe('Exit codes that allow a retry; default: any failure.'),
});

export const scriptSchema = z.strictObject({
  interpreter: z.string().min(1).default('/bin/sh').describe('The program that runs the body, e.g. python3 or "bash -e".'),
  body: z.string().min(1).describe('The script text. Pass values through env, never ${{ }}.'),
});

export const httpSchema = z.strictObject({
  method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']).default('GET').describe('The HTTP method (default GET).'),
  url: z.string().min(1).describe('The URL; may hold ${{ }}.'),
  headers: z.record(z.string(), z.string()).optional().describe('Request headers.'),
  body: z.string().optional().describe('The request body.'),
  expect: z.union([z.number().int(), z.array(z.number().int())]).optional().describe('Accepted status codes; default 200-299.'),
});

export const fileSchema = z.strictObject({
  path: z.string().min(1).describe("Where to write, inside one of the agent's allowed roots (--file-root)."),
  content: z.string().describe('The text to write; may hold ${{ }}.'),
  mode: z
    .union([z.string().regex(/^0?[0-7]{3,4}$/, 'an octal mode like "0644"'), z.number().int()])
    .optional()
    .describe('Permission bits in octal, e.g. "0644"; a number is read as its octal digits (644 means 0644).'),
  owner: z.string().optional().describe('"user" or "user:group".'),
});

/** Names the inventory and credentials use: devices, credential references. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** Networks are label values (agents proxy for one with the label proxy=<network>). */
export const NETWORK_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** The network of a device or inline host that names none. */
export const DEFAULT_NETWORK = 'default';
/**
 * Output lines that fail an ssh step unless it sets errorPattern: the error
 * lines of common device CLIs, which exit 0 on error (Cisco IOS/NX-OS and
 * Arista "% Invalid input", "% Incomplete command", "% Ambiguous command";
 * Huawei/H3C "Error: ..."; Junos "syntax error", "unknown command").
 */
export const DEFAULT_ERROR_PATTERN = '^\\s*(% ?(Invalid|Incomplete|Ambiguous|Unknown|Unrecognized|Error|Bad)\\b|Error: |syntax error|unknown command)';
/**
 * The prompt an ssh step in shell mode waits for after each command: a last,
 * unterminated line like `switch1#`, `switch1(config-if)#`, `admin@mx1>`,
 * `<HUAWEI>`, `[admin@MikroTik] >` or `user@host:~$`.
 */
export const DEFAULT_PROMPT = '^[\\w.@()\\[\\]<>/:~+-]+ ?[>#$%\\]] ?$';
/** How long one ssh command may take when neither the command nor the step says. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;

const outputKey = z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]{0,62}$/, 'output names use letters, digits, "_" and "-", starting with a letter or "_"');

export const sshCommandSchema = z.strictObject({
  command: z.string().min(1).describe('The line sent to the device; may hold ${{ }} (resolved on the agent; a line break in the result fails the step).'),
  name: outputKey.optional().describe("The output key for this command's output (default out_<index>)."),
  timeout: duration.optional(),
});

export const sshSchema = z.strictObject({
  device: z.string().regex(NAME_PATTERN, 'device names use letters, digits, ".", "-" and "_"').optional().describe('The registered device to drive (short for target.device).'),
  host: z.string().min(1).optional().describe('An unregistered device: its address (may hold ${{ }}); needs user and credential.'),
  port: z.number().int().min(1).max(65535).optional().describe('Inline host only: the SSH port (default 22).'),
  user: z.string().min(1).optional().describe('Inline host only: the login user.'),
  credential: z
    .string()
    .regex(NAME_PATTERN, 'credential references use letters, digits, ".", "-" and "_"')
    .optional()
    .describe('Inline host only: a credential name the proxy agent resolves locally (--credential NAME=FILE); never the secret itself.'),
  network: z
    .string()
    .regex(NETWORK_PATTERN, 'network names use letters, digits, ".", "-" and "_"')
    .optional()
    .describe(`Inline host only: its network; agents labelled proxy=<network> reach it (default ${DEFAULT_NETWORK}).`),
  commands: z
    .array(z.union([z.string().min(1), sshCommandSchema]))
    .min(1, 'an ssh step needs at least one command')
    .describe('Commands run one after the other: a line, or { command, name, timeout }.'),
  errorPattern: z
    .string()
    .optional()
    .describe('A regular expression (RE2 syntax): an output line that matches fails the step (default: common device CLI error lines; "" disables).'),
  mode: z
    .enum(['shell', 'exec'])
    .optional()
    .describe('shell (default): one interactive session, each command ended by the prompt; exec: one SSH exec per command, with its exit status.'),
  prompt: z.string().optional().describe("Shell mode: a regular expression (RE2 syntax) the device's prompt (the last, unterminated line) matches."),
  commandTimeout: duration.optional().describe('How long each command may take (default 30s).'),
});

/**
 * Approvers: a role (viewer, operator, admin: that role and above may
 * decide) or an API token's name (`drover token create --name alice`).
 */
export const APPROVER_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$/;

export const approvalSchema = z.strictObject({
  approvers: z
    .array(z.string().regex(APPROVER_PATTERN, 'an approver is a role (viewer, operator, admin) or a token name: letters, digits, ".", "_", "@" and "-"'))
    .min(1, 'an approval step needs at least one approver: a role (viewer, operator, admin) or a token name')
    .describe('Who may decide: roles (that role and above) or API token names (drover token create --name NAME).'),
  message: z.string().optional().describe('What the approvers are asked; may hold ${{ }} over params and the outputs of steps in needs (resolved when the gate opens).'),
  timeout: duration.optional().describe('How long the gate waits for a decision (default: no limit).'),
  onTimeout: z.enum(['fail', 'approve']).optional().describe('What a timeout does: fail the step (default) or approve it.'),
});

export const STEP_KINDS = ['run', 'command', 'script', 'http', 'file', 'sleep', 'ssh', 'approval'] as const;
/** Kinds reserved for later features: named, so the error can say so (none at the moment). */
export const RESERVED_KINDS = [] as const;

export const stepSchema = z.strictObject({
  id: stepId.describe('Unique step id: letters, digits, "-" and "_", starting with a letter.'),
  name: z.string().optional().describe('A display name.'),
  needs: z.array(z.string()).optional().describe('Ids of steps that must succeed first.'),
  run: z.string().min(1).optional().describe('Shell text run with /bin/sh -c. Pass values through env, never ${{ }}.'),
  command: z.array(z.string()).min(1).optional().describe('argv, run without a shell; elements may hold ${{ }}.'),
  script: z.union([z.string().min(1), scriptSchema]).optional().describe('An inline script: its text, or { interpreter, body }.'),
  http: httpSchema.optional().describe('An HTTP request made by the agent; the response is saved as outputs.'),
  file: fileSchema.optional().describe('Write a file on the agent.'),
  sleep: duration.optional(),
  ssh: sshSchema.optional().describe('Run commands on a network device over SSH, through a proxy agent for its network.'),
  approval: approvalSchema.optional().describe('A gate: the run waits here, on no agent, until an approver approves or rejects it (drover approve RUN STEP).'),
  env: z.record(z.string(), scalar).optional().describe('Environment variables for the step; values may hold ${{ }} (including secrets.NAME).'),
  secrets: z
    .array(z.string())
    .optional()
    .describe('Stored secrets (drover secret set NAME) given to the step as environment variables of the same name; masked in its logs and outputs.'),
  target: targetSchema.optional().describe('Which agents run the step; default: any one agent.'),
  forEach: z.string().optional().describe('An expression giving a list (e.g. ${{ params.hosts }}): one instance per item, as `item`.'),
  timeout: duration.optional(),
  retry: retrySchema.optional().describe('Try a failed step again.'),
  when: z.string().optional().describe('A CEL condition; false skips the step.'),
  continueOnError: z.boolean().optional().describe('A failure of this step does not fail the run.'),
});

/** Trigger names: webhook paths (/hooks/<name>) and schedule names. */
export const TRIGGER_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const triggerName = z.string().regex(TRIGGER_NAME, 'trigger names use lower-case letters, digits, ".", "-" and "_" (at most 63)');
const celMapping = z
  .record(z.string(), z.string().min(1))
  .describe('Param name -> CEL expression over the event (`body`: the JSON body; webhooks also `headers`, lower-case names), e.g. username: body.user.login.');

export const webhookTriggerSchema = z.strictObject({
  name: triggerName.describe("The hook's name: it is served at POST /hooks/<name> on the control plane's HTTP port. Unique across registered workflows."),
  secret: z
    .string()
    .regex(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,62}$/, 'secret names use letters, digits, ".", "-" and "_"')
    .describe('The stored secret (drover secret set NAME) whose value signs requests: X-Drover-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">.'),
  params: celMapping.optional(),
  idempotencyKey: z.string().min(1).optional().describe("A CEL expression giving the delivery's idempotency key, e.g. body.event_id: a repeated key starts nothing."),
  tolerance: duration.optional().describe("How far a signature's t may be from the control plane's clock (default 5m)."),
});

export const natsTriggerSchema = z.strictObject({
  subject: z.string().min(1).describe('The NATS subject to subscribe to; may use the wildcards * and >. Needs a control plane started with --nats.'),
  params: celMapping.optional(),
  idempotencyKey: z.string().min(1).optional().describe("A CEL expression giving the message's idempotency key: a repeated key starts nothing."),
});

export const triggerSchema = z.strictObject({
  name: triggerName.optional().describe("Schedules: the name `drover schedule pause|resume` takes (default: the workflow's name, then NAME-2, NAME-3 ... for more schedules)."),
  cron: z.string().min(1).optional().describe('A schedule: a cron expression with 5 fields (minute hour day month weekday), or 6 with seconds first.'),
  timezone: z.string().min(1).optional().describe('Schedules: the IANA time zone the cron expression is read in (default UTC), e.g. Europe/Berlin.'),
  catchup: z
    .enum(['none', 'latest', 'all'])
    .optional()
    .describe('Schedules: fires missed while the control plane was down: none (default), latest (one run), all (one run per missed fire, at most 100).'),
  params: z.record(z.string(), z.union([scalar, z.array(scalar)])).optional().describe('Schedules: the params of each run it starts.'),
  webhook: webhookTriggerSchema.optional().describe('Start a run for each signed POST /hooks/<name>.'),
  nats: natsTriggerSchema.optional().describe('Start a run for each message on a NATS subject (JSON body).'),
});

export const workflowSchema = z.strictObject({
  $schema: z.string().optional().describe('The JSON Schema this document follows (for editors); ignored by Drover.'),
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'workflow names use lower-case letters, digits, ".", "-" and "_"')
    .describe('The workflow name (registry key): lower-case letters, digits, ".", "-" and "_".'),
  description: z.string().optional().describe('What the workflow does.'),
  params: z.record(z.string(), paramSchema).optional().describe('Parameters a run takes, by name (`-p name=value`).'),
  env: z.record(z.string(), scalar).optional().describe('Environment variables for every step; values may hold ${{ }}.'),
  deadline: duration.optional().describe('The whole run must finish within this; past it, running steps are killed and the run fails.'),
  concurrency: z.enum(['allow', 'queue', 'skip']).optional().describe('What a new run does while one is active: allow (default), queue, or skip.'),
  onAgentLost: z.enum(['wait', 'retry', 'fail']).optional().describe('Steps on an agent that is lost: wait for it, retry elsewhere, or fail.'),
  triggers: z
    .array(triggerSchema)
    .optional()
    .describe('What starts runs of the workflow once it is registered (drover workflow apply): cron schedules, signed webhooks, NATS subjects.'),
  steps: z.array(stepSchema).min(1, 'a workflow needs at least one step').describe('The steps, run in the order their `needs` allow.'),
  finally: z.array(stepSchema).optional().describe('Steps that run after all the others, whatever happened (cleanup, notification).'),
});

export type WorkflowDoc = z.infer<typeof workflowSchema>;
export type StepDoc = z.infer<typeof stepSchema>;
export type ParamDoc = z.infer<typeof paramSchema>;
export type TriggerDoc = z.infer<typeof triggerSchema>;

/** Field names per object kind, for did-you-mean suggestions on unknown keys. */
export const KNOWN_KEYS = {
  workflow: Object.keys(workflowSchema.shape),
  step: Object.keys(stepSchema.shape),
  param: Object.keys(paramSchema.shape),
  target: Object.keys(targetSchema.shape),
  retry: Object.keys(retrySchema.shape),
  script: Object.keys(scriptSchema.shape),
  http: Object.keys(httpSchema.shape),
  file: Object.keys(fileSchema.shape),
  ssh: Object.keys(sshSchema.shape),
  commands: Object.keys(sshCommandSchema.shape),
  matchExpressions: Object.keys(labelExpressionSchema.shape),
  trigger: Object.keys(triggerSchema.shape),
  webhook: Object.keys(webhookTriggerSchema.shape),
  nats: Object.keys(natsTriggerSchema.shape),
  approval: Object.keys(approvalSchema.shape),
};
