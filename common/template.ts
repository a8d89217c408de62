/**
 * What the compiler and the agent must agree on about `${{ expr }}`
 * templates: where one starts and ends (the compiler checks each expression,
 * the agent renders it), and how a JSON value looks to CEL (the compiler
 * type-checks against that, the agent evaluates with it).
 */

/** One template; group 1 is the expression. Global: for matchAll and replace only (test() would keep lastIndex). */
export const TEMPLATE = /\$\{\{([\s\S]*?)\}\}/g;

/**
 * A JSON value as CEL sees it: whole numbers become ints (BigInt), at any
 * depth, as the compiler's type check assumes for an `int` param.
 */
export function celValue(v: unknown): unknown {
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (Array.isArray(v)) return v.map(celValue);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, celValue(x)]));
  return v;
}
