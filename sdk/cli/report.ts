import { CommanderError } from 'commander';
import { DroverError, type Problem } from '../errors.js';
import { withCliCommand } from './invocation.js';

/** Process exit codes of the CLI. */
export const EXIT = { ok: 0, failure: 1, usage: 2, interrupted: 130 } as const;

function formatProblem(p: Problem): string {
  const where = p.line ? ` (${p.line}:${p.column})` : '';
  const severity = p.severity === 'warning' ? 'warning: ' : '';
  return `  ${p.path || '<document>'}${where}: ${severity}${withCliCommand(p.message)}`;
}

/** The text printed to stderr for an error: message, hint, then one line per problem. */
export function formatError(err: unknown): string {
  if (err instanceof DroverError) {
    // Messages and hints from the server and the SDK name `drover …`; they are shown as this user can type it.
    const lines = [`error: ${withCliCommand(err.message)}`];
    if (err.hint) lines.push(`hint: ${withCliCommand(err.hint)}`);
    for (const p of err.problems) lines.push(formatProblem(p));
    return lines.join('\n') + '\n';
  }
  const message = err instanceof Error ? err.message : String(err);
  return `error: ${message}\n`;
}

/** Exit code for an error that ended a command. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  return EXIT.failure;
}
