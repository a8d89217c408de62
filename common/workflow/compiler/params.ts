import { MAX_PATTERN_INPUT } from '../../pattern.js';
import { checkedPattern, type Problems } from './problems.js';
import { isObject } from './raw.js';
import type { ParamDoc } from './schema.js';
import { didYouMean } from './suggest.js';

/** Checks given params against declarations and fills defaults; returns typed values. */
export function bindParams(decl: Record<string, ParamDoc>, given: Record<string, string>, problems: Problems, mode: 'run' | 'validate'): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const names = Object.keys(decl);
  for (const name of Object.keys(given)) {
    if (!(name in decl)) problems.addParamValue(['params'], `unknown param "${name}"${didYouMean(name, names)}; this workflow takes: ${names.join(', ') || 'no params'}`);
  }
  for (const [name, p] of Object.entries(decl)) {
    if (!isObject(p)) continue;
    const type = typeof p.type === 'string' ? p.type : 'string';
    const path = ['params', name];
    // Checked whether or not a value is given: a bad pattern is the document's error.
    const pattern = typeof p.pattern === 'string' && p.pattern !== '' ? checkedPattern(p.pattern, `param "${name}" pattern`, [...path, 'pattern'], problems) : undefined;
    let text = given[name];
    // A default that does not fit its own declaration is the document's error, not the caller's.
    const report = (at: typeof path, message: string) => (name in given ? problems.addParamValue(at, message) : problems.add(at, message));
    if (text === undefined && p.default !== undefined) text = Array.isArray(p.default) ? JSON.stringify(p.default) : String(p.default);
    if (text === undefined) {
      if (p.required !== false && mode === 'run') {
        problems.addParamValue(path, `missing param "${name}" (${type}${p.description ? `: ${p.description}` : ''}); pass it with -p ${name}=VALUE`);
      }
      continue;
    }
    const secret = p.secret === true;
    if (secret && type !== 'string') {
      problems.add([...path, 'secret'], `param "${name}" is secret, so it must be of type string (got ${type})`);
      continue;
    }
    const shown = secret ? '(the secret value)' : `"${text}"`;
    const typed = typedValue(type, text);
    if ('error' in typed) {
      report(path, `param "${name}" ${typed.error}`);
      continue;
    }
    if (p.enum && !p.enum.map(String).includes(text)) report(path, `param "${name}" must be one of ${p.enum.join(', ')}, got ${shown}`);
    if (pattern && type === 'string') {
      if (text.length > MAX_PATTERN_INPUT) {
        report(path, `param "${name}" is ${text.length} characters long; a value checked against a pattern may have at most ${MAX_PATTERN_INPUT}`);
      } else if (!pattern.test(text)) {
        report(path, `param "${name}" must match /${p.pattern}/, got ${shown}`);
      }
    }
    out[name] = typed.value;
  }
  return out;
}

/** A param's typed value, or why the text is not one. */
function typedValue(type: string, text: string): { value: unknown } | { error: string } {
  if (type === 'number') {
    const n = Number(text);
    return text.trim() !== '' && Number.isFinite(n) ? { value: n } : { error: `must be a number, got "${text}"` };
  }
  if (type === 'boolean') {
    if (text === 'true' || text === 'false') return { value: text === 'true' };
    return { error: `must be true or false, got "${text}"` };
  }
  if (type === 'list') {
    try {
      const v: unknown = JSON.parse(text);
      if (Array.isArray(v)) return { value: v };
    } catch {
      // not JSON: reported below
    }
    return { error: `must be a JSON list like ["a","b"], got "${text}"` };
  }
  return { value: text };
}

/** CEL values of typed params: whole numbers are ints (BigInt), as the type check assumed. */
export function celParams(typed: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(typed).map(([k, v]) => [k, typeof v === 'number' && Number.isInteger(v) ? BigInt(v) : v]));
}
