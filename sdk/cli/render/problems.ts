import type { Problem } from '../../errors.js';
import type { WorkflowValidation } from '../../types.js';

/**
 * A problem as compilers print them, so editors and CI annotators can jump to
 * it: `FILE:LINE:COL: error: message  (at path)`. Without a line, `FILE:`
 * alone; without a path, no `(at …)`. Lines after the first line of a
 * multi-line message are indented.
 */
export function formatProblemLine(file: string, p: Problem): string {
  const where = p.line ? `${file}:${p.line}:${p.column || 1}` : file;
  const [first, ...rest] = p.message.split('\n');
  const at = p.path ? `  (at ${p.path})` : '';
  const head = `${where}: ${p.severity}: ${first}${at}`;
  return [head, ...rest.map((l) => `    ${l}`)].join('\n');
}

/** "2 errors, 1 warning"; "no problems" when empty. */
export function countProblems(problems: readonly Problem[]): string {
  const errors = problems.filter((p) => p.severity === 'error').length;
  const warnings = problems.length - errors;
  const parts: string[] = [];
  if (errors) parts.push(`${errors} error${errors === 1 ? '' : 's'}`);
  if (warnings) parts.push(`${warnings} warning${warnings === 1 ? '' : 's'}`);
  return parts.length ? parts.join(', ') : 'no problems';
}

/** `drover validate` for one file: its problem lines, then a summary line. */
export function validationText(file: string, v: WorkflowValidation): string {
  const lines = v.problems.map((p) => formatProblemLine(file, p));
  if (v.valid) lines.push(`${file}: valid (workflow ${v.workflow})${v.problems.length ? `, ${countProblems(v.problems)}` : ''}`);
  else lines.push(`${file}: invalid, ${countProblems(v.problems)}`);
  return lines.join('\n') + '\n';
}
