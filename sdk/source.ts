/**
 * What the SDK sends when it is given a workflow: a file path, a document
 * object, or a reference to a workflow in the control plane's registry.
 *
 * The rule for strings (`runs.launch`, `workflows.plan`, `drover run`,
 * `drover plan`): a string that names an existing file is that file. Otherwise,
 * a string of the form NAME or NAME@VERSION (a valid workflow name, no "/", no
 * .yaml/.yml/.json ending, VERSION a positive integer) is a registry
 * reference. Anything else is a missing file (FILE_NOT_FOUND). To name the
 * registry unambiguously, pass `{ ref: 'NAME@VERSION' }`.
 */
import { readFile, stat } from 'node:fs/promises';
import { FileNotFoundError, InvalidInputError, WorkflowNotFoundError } from './errors.js';
import type { WorkflowDocument, WorkflowRef } from './types.js';

/** A workflow document as the API takes it. */
export interface WorkflowSource {
  /** YAML or JSON text. */
  source: string;
  /** Shown in the server's error messages. */
  filename: string;
}

/** A registry reference, parsed. */
export interface ParsedWorkflowRef {
  name: string;
  /** 0 means the latest version. */
  version: number;
}

/** What a call that accepts a registry reference sends: a document, or the reference text. */
export type ResolvedWorkflow = ({ kind: 'source' } & WorkflowSource) | { kind: 'ref'; ref: string };

/** Same rule as the control plane's workflow names: lower-case letters, digits, ".", "-", "_". */
const REF = /^([a-z0-9][a-z0-9._-]{0,62})(?:@([1-9][0-9]{0,8}))?$/;
const FILE_EXTENSION = /\.(ya?ml|json)$/i;

/**
 * Parses `NAME` or `NAME@VERSION`; undefined when the text is not a reference
 * (bad name, version not a positive integer).
 */
export function parseWorkflowRef(text: string): ParsedWorkflowRef | undefined {
  const m = REF.exec(text);
  if (!m) return undefined;
  return { name: m[1], version: m[2] ? Number(m[2]) : 0 };
}

/** `deploy` for the latest version, `deploy@3` for a given one. */
export function formatWorkflowRef(ref: ParsedWorkflowRef): string {
  return ref.version ? `${ref.name}@${ref.version}` : ref.name;
}

/**
 * True when a string that names no file should be read as a registry
 * reference: NAME or NAME@VERSION, without "/" and without a workflow file
 * extension (so a mistyped `deploy.yaml` stays a missing file).
 */
export function looksLikeWorkflowRef(text: string): boolean {
  return parseWorkflowRef(text) !== undefined && !FILE_EXTENSION.test(text);
}

/** True for `{ ref: '...' }` and nothing else (a document never has a lone `ref` key). */
export function isWorkflowRef(value: unknown): value is WorkflowRef {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.length === 1 && keys[0] === 'ref';
}

function documentSource(doc: WorkflowDocument): WorkflowSource {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new InvalidInputError('a workflow must be a file path or a workflow document object');
  }
  const name = typeof doc.name === 'string' ? doc.name : 'workflow';
  return { source: JSON.stringify(doc, null, 2), filename: `<${name}>` };
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function readWorkflowFile(path: string, refHint = false): Promise<WorkflowSource> {
  try {
    return { source: await readFile(path, 'utf8'), filename: path };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new FileNotFoundError(`workflow file not found: ${path}`, {
        hint: refHint
          ? 'paths are relative to the current directory; a registered workflow is named NAME or NAME@VERSION (see `drover workflow list`)'
          : 'paths are relative to the current directory',
        cause: err,
      });
    }
    if (code === 'EISDIR') throw new InvalidInputError(`${path} is a directory, not a workflow file`, { cause: err });
    throw new InvalidInputError(`cannot read workflow file ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * A document for calls that need one (validate, apply): a path is read as is
 * (YAML or JSON), an object is serialised as JSON.
 */
export async function workflowSource(workflowOrPath: string | WorkflowDocument): Promise<WorkflowSource> {
  if (typeof workflowOrPath === 'string') return readWorkflowFile(workflowOrPath);
  if (isWorkflowRef(workflowOrPath)) {
    throw new InvalidInputError(`a registry reference (${String(workflowOrPath.ref)}) is not accepted here; give a file or a document`);
  }
  return documentSource(workflowOrPath);
}

/**
 * A document or a registry reference, for calls that take either (launch,
 * plan), following the rule in this file's header.
 */
export async function resolveWorkflow(input: string | WorkflowDocument | WorkflowRef): Promise<ResolvedWorkflow> {
  if (typeof input === 'string') {
    if (!(await isFile(input)) && looksLikeWorkflowRef(input)) return { kind: 'ref', ref: input };
    return { kind: 'source', ...(await readWorkflowFile(input, true)) };
  }
  if (isWorkflowRef(input)) {
    const ref = input.ref;
    if (typeof ref !== 'string' || !parseWorkflowRef(ref)) {
      throw new InvalidInputError(`invalid workflow reference ${JSON.stringify(ref)}`, {
        hint: 'write NAME or NAME@VERSION, e.g. { ref: "deploy" } or { ref: "deploy@3" }',
      });
    }
    return { kind: 'ref', ref };
  }
  return { kind: 'source', ...documentSource(input) };
}

/**
 * Runs a call made with a resolved workflow. When a plain string was read as
 * a registry reference and the registry has no such workflow, the error also
 * says that no file of that name exists, since the caller may have meant one.
 */
export async function withWorkflow<T>(input: string | WorkflowDocument | WorkflowRef, call: (resolved: ResolvedWorkflow) => Promise<T>): Promise<T> {
  const resolved = await resolveWorkflow(input);
  try {
    return await call(resolved);
  } catch (err) {
    if (typeof input === 'string' && resolved.kind === 'ref' && err instanceof WorkflowNotFoundError) {
      throw new WorkflowNotFoundError(`${err.message}, and there is no file named "${input}"`, { hint: err.hint, cause: err });
    }
    throw err;
  }
}
