/** What a workflow that does not compile is refused with, the same whether the control plane or the CLI (offline) compiled it. */
import type { Problem } from '../../errors.js';

export interface CompileFailure {
  code: 'INVALID_WORKFLOW' | 'INVALID_PARAMS';
  message: string;
  hint: string;
}

/** `invalidParams`: every error is about the params given, not the document (CompileResult.invalidParams). */
export function compileFailure(file: string, problems: readonly Problem[], invalidParams = false): CompileFailure {
  const errors = problems.filter((p) => p.severity === 'error').length;
  const count = `${errors} problem${errors === 1 ? '' : 's'}`;
  return invalidParams
    ? { code: 'INVALID_PARAMS', message: `${file}: ${count} with the params`, hint: 'fix the -p values listed and submit again; nothing was started' }
    : { code: 'INVALID_WORKFLOW', message: `${file}: ${count} in the workflow`, hint: 'fix the problems listed and submit again; nothing was started' };
}
