/**
 * Step outputs: the step appends to the file named by $DROVER_OUTPUT either
 * `key=value` lines or the heredoc form for multi-line values:
 *   key<<EOF
 *   line one
 *   line two
 *   EOF
 * At most MAX_OUTPUT_BYTES are read; a larger file fails the step.
 */
import { readFileSync, statSync } from 'node:fs';

/** Upper bound on a step's output file (documented in docs/workflows.md). */
export const MAX_OUTPUT_BYTES = 256 * 1024;

export class OutputError extends Error {
  override name = 'OutputError';
}

export function readOutputs(file: string): Record<string, string> {
  // Most steps write no outputs: no exception for the missing file (it costs more than the read).
  const size = statSync(file, { throwIfNoEntry: false })?.size;
  if (size === undefined) return {};
  if (size > MAX_OUTPUT_BYTES) throw new OutputError(`the step wrote ${size} bytes to $DROVER_OUTPUT; the limit is ${MAX_OUTPUT_BYTES}`);
  return parseOutputs(readFileSync(file, 'utf8'));
}

export function parseOutputs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (!line.trim()) continue;
    const heredoc = /^([A-Za-z_][A-Za-z0-9_-]*)<<(\S+)$/.exec(line);
    if (heredoc) {
      const [, key, delim] = heredoc;
      const body: string[] = [];
      while (++i < lines.length && lines[i] !== delim) body.push(lines[i]);
      if (i >= lines.length) throw new OutputError(`output "${key}" opened with <<${delim} but no closing ${delim} line`);
      out[key] = body.join('\n');
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) throw new OutputError(`cannot read output line "${line.slice(0, 80)}": use key=value or key<<DELIM`);
    out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}
