/** Type checks of ${{ }} templates, conditions and forEach against the declared params, and the steps they refer to. */
import { TEMPLATE } from '../../template.js';
import { celEnvironment, checkExpression, stepRefs, type ParamType } from './expressions.js';
import type { Problems } from './problems.js';
import { isObject } from './raw.js';
import type { ParamDoc } from './schema.js';
import type { PathSegment } from './source.js';
import { didYouMean } from './suggest.js';

/** CEL types of the params: numbers are int when their value is whole, else double. */
export function paramTypes(decl: Record<string, ParamDoc>, typed: Record<string, unknown>): Record<string, ParamType> {
  const out: Record<string, ParamType> = {};
  for (const [name, p] of Object.entries(decl)) {
    const type = isObject(p) && typeof p.type === 'string' ? p.type : 'string';
    const v = typed[name] ?? (isObject(p) ? p.default : undefined);
    out[name] = type === 'number' ? (typeof v === 'number' && !Number.isInteger(v) ? 'double' : 'int') : type === 'boolean' ? 'bool' : type === 'list' ? 'list' : 'string';
  }
  return out;
}

/**
 * Checkers reporting to `problems`: `checkExpr` for a bare expression (a condition
 * with `wantBool`), `checkTemplates` for every ${{ }} in a text. A reference to a
 * step outside `needs` is an error; `needs` undefined allows any.
 */
export function expressionChecks(types: Record<string, ParamType>, problems: Problems) {
  const declared = Object.keys(types);
  const envFor = (withItem: boolean) => celEnvironment(types, withItem);
  const checkExpr = (expr: string, path: PathSegment[], needs: string[] | undefined, withItem: boolean, wantBool = false) => {
    const res = checkExpression(envFor(withItem), expr);
    if (res.error) {
      const known = /No such key: (\S+)/.exec(res.error);
      let msg = `invalid expression "${expr.trim()}": ${res.error}`;
      if (/Unknown variable: item/.test(res.error)) msg = `"item" is only available in forEach steps (in "${expr.trim()}")`;
      else if (known && /\bparams\./.test(expr)) msg = `unknown param "${known[1]}"${didYouMean(known[1], declared)} in "${expr.trim()}"; declare it under params`;
      return problems.add(path, msg);
    }
    if (wantBool && res.type && res.type !== 'bool' && res.type !== 'dyn') {
      problems.add(path, `condition "${expr.trim()}" is of type ${res.type}; a condition must be true or false`);
    }
    for (const s of stepRefs(expr)) {
      if (needs && !needs.includes(s)) problems.add(path, `expression refers to step "${s}", which is not in this step's needs; add it to needs`);
    }
  };
  const checkTemplates = (text: string, path: PathSegment[], needs: string[] | undefined, withItem: boolean) => {
    for (const m of text.matchAll(TEMPLATE)) checkExpr(m[1], path, needs, withItem);
  };
  return { checkExpr, checkTemplates };
}
