import { InvalidArgumentError } from 'commander';
import { parseDuration } from '../../common/duration.js';
import { DroverError } from '../errors.js';
import { parseParamArgs } from '../params.js';

/** Commander reducer for repeatable options. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Commander reducer for `-p key=value`: validates each one as it is parsed. */
export function collectParam(value: string, previous: string[] = []): string[] {
  try {
    parseParamArgs([value]);
  } catch (err) {
    throw new InvalidArgumentError(err instanceof DroverError ? `${err.message} (${err.hint})` : String(err));
  }
  return [...previous, value];
}

/** Commander parser for positive integers. */
export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

/** Commander parser for durations such as 30m, 1h or 7d (milliseconds). */
export function durationMs(value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0) throw new InvalidArgumentError('expected a duration such as 30m, 1h or 7d');
  return ms;
}
