/**
 * Resolves ${{ }} templates in step env values, and `when` conditions, with
 * CEL. The compiler already checked syntax and references; values reach the
 * process only as environment variables, never as shell text.
 */
import { evaluate } from '@marcbachmann/cel-js';
import { TEMPLATE } from '../common/template.js';

export interface ExprContext {
  params: Record<string, unknown>;
  /** Stored secrets sent with this step (`secrets.NAME`). */
  secrets: Record<string, string>;
  steps: Record<string, { status: string; outputs: Record<string, string> }>;
  run: { id: string; workflow: string; started: string };
  agent: { name: string; labels: Record<string, string>; facts: Record<string, unknown> };
  item?: unknown;
}

export function renderTemplate(text: string, ctx: ExprContext): string {
  return text.replace(TEMPLATE, (_m, expr: string) => stringify(evaluate(expr.trim(), ctx as unknown as Record<string, unknown>)));
}

export function evaluateCondition(expr: string, ctx: ExprContext): boolean {
  const v = evaluate(expr, ctx as unknown as Record<string, unknown>);
  if (typeof v !== 'boolean') throw new Error(`condition "${expr}" gave ${stringify(v)}, not true or false`);
  return v;
}

function stringify(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === null || v === undefined) return '';
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? Number(x) : x));
}
