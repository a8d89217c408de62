/**
 * ${{ }} templates and CEL expressions. The compiler rewrites step ids that
 * are not CEL identifiers (`steps.create-account.outputs.uid`) into index
 * form (`steps["create-account"].outputs.uid`) so agents evaluate plain CEL,
 * and type-checks every expression against the declared params.
 */
import { Environment } from '@marcbachmann/cel-js';
import { TEMPLATE } from '../../template.js';

export function hasTemplate(text: string): boolean {
  return /\$\{\{/.test(text);
}

/** Rewrites `steps.<id>` with dashes into `steps["<id>"]`. */
export function canonicalize(expr: string): string {
  return expr.replace(/\bsteps\.([A-Za-z][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)+)/g, 'steps["$1"]');
}

/** Rewrites every template in a string into canonical form. */
export function canonicalizeTemplates(text: string): string {
  return text.replace(TEMPLATE, (_m, expr: string) => `\${{ ${canonicalize(expr.trim())} }}`);
}

/** A bare expression, with or without a ${{ }} wrapper (as in `when` and `forEach`). */
export function unwrap(expr: string): string {
  const m = /^\s*\$\{\{([\s\S]*)\}\}\s*$/.exec(expr);
  return (m ? m[1] : expr).trim();
}

/** Step ids an expression refers to. */
export function stepRefs(expr: string): string[] {
  return [...canonicalize(expr).matchAll(/\bsteps(?:\.([A-Za-z_][A-Za-z0-9_]*)|\["([^"]+)"\])/g)].map((m) => m[1] ?? m[2]);
}

export type ParamType = 'string' | 'int' | 'double' | 'bool' | 'list';

/** The CEL environment expressions are checked against. */
export function celEnvironment(paramTypes: Record<string, ParamType>, withItem: boolean): Environment {
  const env = new Environment({ unlistedVariablesAreDyn: false })
    .registerVariable({ name: 'params', schema: paramTypes } as unknown as Parameters<Environment['registerVariable']>[0])
    .registerVariable('steps', 'map')
    .registerVariable('secrets', 'map')
    .registerVariable('run', 'map')
    .registerVariable('agent', 'map');
  return withItem ? env.registerVariable('item', 'dyn') : env;
}

export interface CheckResult {
  error?: string;
  type?: string;
}

export function checkExpression(env: Environment, expr: string): CheckResult {
  try {
    const res = env.check(canonicalize(expr)) as { valid: boolean; type?: string; error?: Error };
    if (!res.valid) return { error: (res.error?.message ?? 'invalid expression').split('\n')[0] };
    return { type: res.type };
  } catch (err) {
    return { error: (err as Error).message.split('\n')[0] };
  }
}
