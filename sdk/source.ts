import { readFile } from 'node:fs/promises';
import { FileNotFoundError, InvalidInputError } from './errors.js';
import type { WorkflowDocument } from './types.js';

/** A workflow document as SubmitRun takes it. */
export interface WorkflowSource {
  /** YAML or JSON text. */
  source: string;
  /** Shown in the server's error messages. */
  filename: string;
}

/**
 * Turns what `runs.launch` was given into source text: a path is read as is
 * (YAML or JSON), an object is serialised as JSON.
 */
export async function workflowSource(workflowOrPath: string | WorkflowDocument): Promise<WorkflowSource> {
  if (typeof workflowOrPath !== 'string') {
    if (workflowOrPath === null || typeof workflowOrPath !== 'object' || Array.isArray(workflowOrPath)) {
      throw new InvalidInputError('a workflow must be a file path or a workflow document object');
    }
    const name = typeof workflowOrPath.name === 'string' ? workflowOrPath.name : 'workflow';
    return { source: JSON.stringify(workflowOrPath, null, 2), filename: `<${name}>` };
  }
  try {
    return { source: await readFile(workflowOrPath, 'utf8'), filename: workflowOrPath };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new FileNotFoundError(`workflow file not found: ${workflowOrPath}`, {
        hint: 'paths are relative to the current directory',
        cause: err,
      });
    }
    throw new InvalidInputError(`cannot read workflow file ${workflowOrPath}: ${(err as Error).message}`, { cause: err });
  }
}
