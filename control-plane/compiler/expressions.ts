/**
 * ${{ }} templates. Expressions are CEL; the compiler rewrites step ids that
 * are not CEL identifiers (`steps.create-account.outputs.uid`) into index
 * form (`steps["create-account"].outputs.uid`) so agents evaluate plain CEL.
 */
import { parse } from '@marcbachmann/cel-js';

export const TEMPLATE = /\$\{\{([\s\S]*?)\}\}/g;

export function hasTemplate(text: string): boolean {
  return /\$\{\{/.test(text);
}

/** Rewrites `steps.<id>` with dashes into `steps["<id>"]`. */
export function canonicalize(expr: string): string {
  return expr.replace(/\bsteps\.([A-Za-z][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)+)/g, 'steps["$1"]');
}

export interface ExprCheck {
  error?: string;
  params: string[];
  steps: string[];
}

/** Parses a CEL expression and lists the params and steps it refers to. */
export function checkExpression(expr: string): ExprCheck {
  const canonical = canonicalize(expr.trim());
  const refs: ExprCheck = { params: [], steps: [] };
  try {
    parse(canonical);
  } catch (err) {
    refs.error = (err as Error).message.split('\n')[0];
    return refs;
  }
  for (const m of canonical.matchAll(/\bparams\.([A-Za-z_][A-Za-z0-9_]*)/g)) refs.params.push(m[1]);
  for (const m of canonical.matchAll(/\bsteps(?:\.([A-Za-z_][A-Za-z0-9_]*)|\["([^"]+)"\])/g)) refs.steps.push(m[1] ?? m[2]);
  return refs;
}

/** Rewrites every template in a string into canonical form. */
export function canonicalizeTemplates(text: string): string {
  return text.replace(TEMPLATE, (_m, expr: string) => `\${{ ${canonicalize(expr.trim())} }}`);
}
