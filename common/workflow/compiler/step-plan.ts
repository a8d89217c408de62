/** One declared step as a unit of the plan: its kind, target, policies and canonical templates. */
import { parseDuration } from '../../duration.js';
import type { LabelExpression, SshPlan, StepKind, StepPlan, TargetPlan } from '../model/plan.js';
import { canonicalize, canonicalizeTemplates, unwrap } from './expressions.js';
import { DEFAULT_COMMAND_TIMEOUT_MS, DEFAULT_ERROR_PATTERN, DEFAULT_NETWORK, DEFAULT_PROMPT, STEP_KINDS, type StepDoc, type WorkflowDoc } from './schema.js';
import { withSecretRefs } from './secrets.js';

/** A step's target as written, with defaults ('' for no agent or device, strategy one). */
export function targetPlan(doc: StepDoc): TargetPlan {
  const t = doc.target ?? {};
  const device = t.device ?? doc.ssh?.device ?? '';
  const op = (o: string): LabelExpression['operator'] =>
    (({ in: 'In', notin: 'NotIn', exists: 'Exists', doesnotexist: 'DoesNotExist' }) as const)[o.toLowerCase() as 'in'];
  return {
    labels: { ...t.labels },
    matchExpressions: (t.matchExpressions ?? []).map((e) => ({ key: e.key, operator: op(e.operator), values: [...(e.values ?? [])] })),
    agent: t.agent ?? '',
    device,
    strategy: t.strategy ?? 'one',
    // wait: 0 is no wait at all (the run is refused when nothing matches).
    ...(parseDuration(t.wait) ? { waitMs: parseDuration(t.wait) } : {}),
  };
}

function kindOf(doc: StepDoc): StepKind {
  return STEP_KINDS.find((k) => doc[k] !== undefined)!;
}

/** The plan of a declared step before any fan-out; `needs` already includes what a finally step waits for. */
export function unitPlan(wf: WorkflowDoc, s: StepDoc, target: TargetPlan, needs: string[], isFinally: boolean, secretParams: Set<string>): StepPlan {
  const env: Record<string, string> = {};
  for (const n of s.secrets ?? []) env[n] = `\${{ secrets.${n} }}`;
  // A gate runs no process: the workflow's env is not its.
  if (!s.approval) for (const [k, v] of Object.entries({ ...wf.env, ...s.env })) env[k] = canonicalizeTemplates(String(v));
  const script = typeof s.script === 'string' ? { interpreter: '/bin/sh', body: s.script } : (s.script ?? null);
  const expect = s.http?.expect;
  const plan: StepPlan = {
    id: s.id,
    parent: '',
    itemJson: '',
    kind: kindOf(s),
    needs,
    run: s.run ?? '',
    command: (s.command ?? []).map(canonicalizeTemplates),
    script,
    http: s.http
      ? {
          method: s.http.method,
          url: canonicalizeTemplates(s.http.url),
          headers: Object.fromEntries(Object.entries(s.http.headers ?? {}).map(([k, v]) => [k, canonicalizeTemplates(v)])),
          body: canonicalizeTemplates(s.http.body ?? ''),
          expectStatus: expect === undefined ? [] : Array.isArray(expect) ? expect : [expect],
        }
      : null,
    file: s.file
      ? {
          path: canonicalizeTemplates(s.file.path),
          content: canonicalizeTemplates(s.file.content),
          // YAML reads an unquoted 644 (or 0644) as the number 644: its digits are the octal mode.
          mode: s.file.mode === undefined ? '' : String(s.file.mode),
          owner: s.file.owner ?? '',
        }
      : null,
    sleepMs: s.sleep === undefined ? 0 : (parseDuration(s.sleep) ?? 0),
    ssh: s.ssh ? sshPlan(s.ssh) : null,
    ...(s.approval && {
      approval: {
        approvers: [...s.approval.approvers],
        message: canonicalizeTemplates(s.approval.message ?? ''),
        timeoutMs: parseDuration(s.approval.timeout) ?? 0,
        onTimeout: s.approval.onTimeout ?? 'fail',
      },
    }),
    env,
    target,
    agent: target.agent,
    timeoutMs: parseDuration(s.timeout) ?? 0,
    retry: {
      attempts: s.retry?.attempts ?? 1,
      backoff: s.retry?.backoff ?? 'fixed',
      initialMs: parseDuration(s.retry?.initial) ?? 1000,
      maxMs: parseDuration(s.retry?.max) ?? 60_000,
      jitter: s.retry?.jitter ?? 0,
      retryOn: s.retry?.retryOn ?? [],
    },
    when: s.when ? canonicalize(unwrap(s.when)) : '',
    continueOnError: s.continueOnError ?? false,
    isFinally,
    secrets: [],
    secretParams: [],
  };
  return withSecretRefs(plan, secretParams);
}

/** An ssh step's plan as written; a registered device's connection is filled in by onDevice. */
function sshPlan(ssh: NonNullable<StepDoc['ssh']>): SshPlan {
  return {
    device: '',
    host: canonicalizeTemplates(ssh.host ?? ''),
    port: ssh.port ?? 22,
    user: ssh.user ?? '',
    credential: ssh.credential ?? '',
    network: ssh.network ?? DEFAULT_NETWORK,
    commands: ssh.commands.map((c) =>
      typeof c === 'string'
        ? { command: canonicalizeTemplates(c), name: '', timeoutMs: 0 }
        : { command: canonicalizeTemplates(c.command), name: c.name ?? '', timeoutMs: parseDuration(c.timeout) ?? 0 },
    ),
    errorPattern: ssh.errorPattern ?? DEFAULT_ERROR_PATTERN,
    mode: ssh.mode ?? 'shell',
    prompt: ssh.prompt || DEFAULT_PROMPT,
    commandTimeoutMs: parseDuration(ssh.commandTimeout) ?? DEFAULT_COMMAND_TIMEOUT_MS,
    maxSessions: 1,
  };
}
