/**
 * Rules of an approval step that span fields. A gate runs on no agent: the
 * control plane opens it, so what only an agent has (a target, env,
 * secrets, retries, forEach items, `agent.*` in expressions) has no meaning
 * there, and its message is shown to people, so no secret may reach it.
 */
import { TEMPLATE } from '../../template.js';
import { unwrap } from './expressions.js';
import type { Problems } from './problems.js';
import { isObject } from './raw.js';
import { secretRefs } from './secrets.js';
import type { PathSegment } from './source.js';

/** Step fields an approval step may not have, and what to do instead. */
const NOT_FOR_GATES: Record<string, string> = {
  target: 'it runs on no agent; put the work before or after it in steps of their own',
  forEach: 'a gate is decided once; put one approval step before the forEach step',
  retry: 'a gate is decided once; a rejected one fails (or, with continueOnError, lets the run go on)',
  env: 'it runs no process; use ${{ }} in approval.message',
  secrets: 'it runs no process, and its message is shown to people',
  timeout: 'use approval.timeout (and approval.onTimeout)',
};

/** `checkTemplates` of expression-checks.ts has checked the message's types and step references already. */
export function checkApproval(doc: Record<string, unknown>, isFinally: boolean, path: PathSegment[], _needs: string[], problems: Problems) {
  for (const [field, why] of Object.entries(NOT_FOR_GATES)) {
    if (doc[field] !== undefined) problems.add([...path, field], `an approval step takes no ${field}: ${why}`);
  }
  if (isFinally) {
    problems.add([...path, 'approval'], 'an approval step cannot be a finally step: finally steps run after a cancel or a failure too, when nobody is asked anything; put the gate in steps');
  }
  for (const [at, expr] of expressions(doc, path)) {
    if (/\bagent\s*(\.|\[)/.test(expr)) problems.add(at, `"${expr.trim()}" uses agent, but an approval step runs on no agent: use params and the outputs of steps in needs`);
  }
}

/** Secrets and secret params may not feed a gate's message or condition: the message is shown to people and stored in the run. */
export function checkApprovalSecrets(doc: Record<string, unknown>, path: PathSegment[], secretParams: Set<string>, problems: Problems) {
  for (const [at, expr] of expressions(doc, path)) {
    const refs = secretRefs(expr);
    const param = refs.params.find((n) => secretParams.has(n));
    if (refs.secrets.length || refs.dynamic || param) {
      problems.add(at, `an approval step may not use ${param ? `secret param "${param}"` : 'secrets'}: its message is shown to approvers and kept in the run's history`);
    }
  }
}

/** The gate's expressions: the message's templates and its `when`. */
function expressions(doc: Record<string, unknown>, path: PathSegment[]): [PathSegment[], string][] {
  const out: [PathSegment[], string][] = [];
  if (isObject(doc.approval) && typeof doc.approval.message === 'string') {
    for (const m of doc.approval.message.matchAll(TEMPLATE)) out.push([[...path, 'approval', 'message'], m[1]]);
  }
  if (typeof doc.when === 'string') out.push([[...path, 'when'], unwrap(doc.when)]);
  return out;
}
