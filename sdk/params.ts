import { readFileSync } from 'node:fs';
import { FileNotFoundError, InvalidInputError } from './errors.js';
import type { Params } from './types.js';

/**
 * Encodes param values for the wire, where every value is a string: numbers
 * and booleans as their text, string arrays as JSON.
 */
export function encodeParams(params: Params = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(params)) {
    if (Array.isArray(value)) {
      if (!value.every((v) => typeof v === 'string')) {
        throw new InvalidInputError(`param ${key}: arrays may only hold strings`);
      }
      out[key] = JSON.stringify(value);
    } else if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      out[key] = String(value);
    } else {
      throw new InvalidInputError(`param ${key}: expected a string, number, boolean or string array, got ${value === null ? 'null' : typeof value}`);
    }
  }
  return out;
}

/**
 * Parses `key=value` arguments (the CLI's `-p`) into params. The value is
 * everything after the first `=` and may be empty; a key given more than once
 * collects its values into a string array.
 */
export function parseParamArgs(args: readonly string[]): Params {
  const out: Params = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    const key = eq < 0 ? '' : arg.slice(0, eq).trim();
    if (eq < 0 || !/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(key)) {
      throw new InvalidInputError(`invalid param "${arg}": expected key=value`, {
        hint: 'pass each param as -p key=value, e.g. -p username=alice',
      });
    }
    const value = arg.slice(eq + 1);
    const prev = out[key];
    if (prev === undefined) out[key] = value;
    else out[key] = Array.isArray(prev) ? [...prev, value] : [String(prev), value];
  }
  return out;
}

/**
 * Parses `key=FILE` arguments (the CLI's `--param-file`): each value is the
 * file's text, one trailing newline dropped. For secret params, whose values
 * should not sit in shell history or the process list.
 */
export function readParamFiles(args: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    const key = eq < 0 ? '' : arg.slice(0, eq).trim();
    const file = arg.slice(eq + 1);
    if (eq < 0 || !/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(key) || !file) {
      throw new InvalidInputError(`invalid --param-file "${arg}": expected key=FILE`, { hint: 'e.g. --param-file token=/run/secrets/token' });
    }
    try {
      out[key] = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new FileNotFoundError(`cannot read --param-file ${key}=${file}: ${(err as Error).message}`, { hint: 'give the path of a readable file' });
    }
  }
  return out;
}
