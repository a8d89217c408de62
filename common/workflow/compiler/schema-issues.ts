import type { z } from 'zod';
import type { Problems } from './problems.js';
import { KNOWN_KEYS } from './schema.js';
import type { PathSegment } from './source.js';
import { didYouMean } from './suggest.js';

/** Zod's issues with the document as problems at their paths (an unknown field lists the allowed ones). */
export function reportSchemaIssues(issues: z.core.$ZodIssue[], problems: Problems) {
  for (const issue of issues) {
    const path = issue.path as PathSegment[];
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeysFor(path);
      for (const key of issue.keys) {
        problems.add([...path, key], `unknown field "${key}"${didYouMean(key, known)}; allowed here: ${known.join(', ')}`);
      }
    } else if (issue.code === 'invalid_type' && issue.input === undefined) {
      problems.add(path, `missing required field "${path[path.length - 1]}"`);
    } else if (issue.code === 'invalid_union' && typeof issue.input === 'object' && issue.input !== null) {
      // A union of a shorthand and an object form: report the object form's problems.
      const objectErrors = issue.errors.find((errs) => errs.some((e) => e.code !== 'invalid_type'));
      if (objectErrors) reportSchemaIssues(objectErrors.map((e) => ({ ...e, path: [...path, ...e.path] })), problems);
      else problems.add(path, issue.message.replace(/^Invalid input: /, ''));
    } else if (issue.code === 'invalid_value' && typeof issue.input === 'string') {
      // A value outside an enum: say what was given and the nearest allowed one.
      const allowed = issue.values.filter((v): v is string => typeof v === 'string');
      problems.add(path, `${issue.message.replace(/^Invalid input: /, '')}, got "${issue.input}"${didYouMean(issue.input, allowed)}`);
    } else {
      problems.add(path, issue.message.replace(/^Invalid input: /, ''));
    }
  }
}

/** The fields allowed at `path`, for the unknown-field message. */
function knownKeysFor(path: PathSegment[]): string[] {
  const last = path[path.length - 1];
  const parent = path[path.length - 2];
  if (path.length === 0) return KNOWN_KEYS.workflow;
  if (typeof last === 'string' && last in KNOWN_KEYS && last !== 'workflow' && last !== 'step' && last !== 'trigger') return KNOWN_KEYS[last as keyof typeof KNOWN_KEYS];
  if (parent === 'params') return KNOWN_KEYS.param;
  if (parent === 'matchExpressions') return KNOWN_KEYS.matchExpressions;
  if (parent === 'commands') return KNOWN_KEYS.commands;
  if ((parent === 'steps' || parent === 'finally') && typeof last === 'number') return KNOWN_KEYS.step;
  if (parent === 'triggers' && typeof last === 'number') return KNOWN_KEYS.trigger;
  return [];
}
