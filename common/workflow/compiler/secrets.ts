/**
 * Where secrets may go in a document, and which ones each step's expressions
 * name (those are sent with the step, to its agent only).
 */
import type { StepPlan } from '../model/plan.js';
import { TEMPLATE } from '../../template.js';
import { unwrap } from './expressions.js';
import { checkApprovalSecrets } from './approval-rules.js';
import type { Problems } from './problems.js';
import { isObject, templateFields, type RawStep } from './raw.js';
import type { PathSegment } from './source.js';
import { didYouMean } from './suggest.js';

/** What a param declared secret shows as in the plan, the run and every listing. */
export const SECRET_SHOWN = '(secret)';

/** `secrets.NAME` / `secrets["NAME"]` in an expression; a `secrets` not of either form is dynamic. */
const SECRET_REF = /\bsecrets(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*"([^"]+)"\s*\]|\[\s*'([^']+)'\s*\])/g;
const PARAM_REF = /\bparams(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*"([^"]+)"\s*\]|\[\s*'([^']+)'\s*\])/g;
/** Names in a step's `secrets:` list become environment variables of the same name. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Stored secrets and params an expression names. */
export function secretRefs(expr: string): { secrets: string[]; params: string[]; dynamic: boolean } {
  const secrets = [...expr.matchAll(SECRET_REF)].map((m) => m[1] ?? m[2] ?? m[3]);
  const params = [...expr.matchAll(PARAM_REF)].map((m) => m[1] ?? m[2] ?? m[3]);
  const dynamic = (expr.match(/\bsecrets\b/g) ?? []).length > secrets.length;
  return { secrets, params, dynamic };
}

/**
 * Where secrets may go: stored secrets (`secrets:` or `${{ secrets.NAME }}`)
 * must exist and be named literally; neither they nor secret params may feed
 * forEach, which is expanded into the plan.
 */
export function checkSecrets(raw: Record<string, unknown>, steps: RawStep[], secretParams: Set<string>, known: string[] | undefined, problems: Problems) {
  const unknown = (name: string, at: PathSegment[]) => {
    if (known && !known.includes(name)) {
      problems.add(at, `secret "${name}" is not set on this control plane${didYouMean(name, known)}; set it with \`drover secret set ${name}\` (see \`drover secret list\`)`);
    }
  };
  const checkText = (text: string, at: PathSegment[]) => {
    for (const m of text.matchAll(TEMPLATE)) {
      const refs = secretRefs(m[1]);
      if (refs.dynamic) problems.add(at, `secrets must be named literally (secrets.NAME or secrets["NAME"]) in "${m[1].trim()}", so the control plane knows which to send`);
      for (const n of refs.secrets) unknown(n, at);
    }
  };
  if (isObject(raw.env)) for (const [k, v] of Object.entries(raw.env)) if (typeof v === 'string') checkText(v, ['env', k]);
  for (const s of steps) {
    const { doc, path } = s;
    if (Array.isArray(doc.secrets)) {
      doc.secrets.forEach((n: unknown, i: number) => {
        if (typeof n !== 'string') return;
        const at = [...path, 'secrets', i];
        if (!ENV_NAME.test(n)) problems.add(at, `secret "${n}" cannot be an environment variable name; use env: { NAME: "\${{ secrets["${n}"] }}" } instead`);
        else unknown(n, at);
      });
    }
    for (const [sub, text] of templateFields(doc)) checkText(text, [...path, ...sub]);
    if (typeof doc.when === 'string') checkText(`\${{ ${unwrap(doc.when)} }}`, [...path, 'when']);
    if (doc.approval !== undefined) checkApprovalSecrets(doc, path, secretParams, problems);
    if (typeof doc.forEach === 'string') {
      const refs = secretRefs(unwrap(doc.forEach));
      const secretParam = refs.params.find((n) => secretParams.has(n));
      if (refs.secrets.length || refs.dynamic || secretParam) {
        problems.add([...path, 'forEach'], `forEach may not use ${secretParam ? `secret param "${secretParam}"` : 'secrets'}: its items are expanded into the plan, which is stored and shown`);
      }
    }
  }
}

/** Fills a step's `secrets` and `secretParams` from the expressions of its fields. */
export function withSecretRefs(plan: StepPlan, secretParams: Set<string>): StepPlan {
  const texts = [
    ...Object.values(plan.env),
    ...plan.command,
    ...(plan.http ? [plan.http.url, plan.http.body, ...Object.values(plan.http.headers)] : []),
    ...(plan.file ? [plan.file.path, plan.file.content] : []),
    ...(plan.ssh ? [plan.ssh.host, ...plan.ssh.commands.map((c) => c.command)] : []),
  ];
  const secrets = new Set<string>();
  const params = new Set<string>();
  const add = (expr: string) => {
    const refs = secretRefs(expr);
    refs.secrets.forEach((n) => secrets.add(n));
    refs.params.filter((n) => secretParams.has(n)).forEach((n) => params.add(n));
  };
  for (const t of texts) for (const m of t.matchAll(TEMPLATE)) add(m[1]);
  if (plan.when) add(plan.when);
  return { ...plan, secrets: [...secrets].sort(), secretParams: [...params].sort() };
}
