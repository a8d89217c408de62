/**
 * What changes between two workflow documents, step by step, as `nomad job
 * plan` shows a job's: the workflow's own fields (params, env, triggers,
 * deadline...), then each step by its id (in `steps` or `finally`) added,
 * removed or changed, with the fields that changed. Documents are compared
 * as values: comments, key order and layout are no change. Nested mappings
 * are compared field by field (`retry.attempts`); lists as a whole
 * (`needs`). Pure.
 */
import { parseDocument } from 'yaml';
import { InvalidInputError } from './errors.js';

/** One field that differs; `before` absent: added, `after` absent: removed. */
export interface FieldChange {
  /** Dotted path inside the workflow or the step, e.g. `params.role.default`, `retry.attempts`. */
  path: string;
  before?: unknown;
  after?: unknown;
}

/** A step that was added, removed or changed. */
export interface StepChange {
  id: string;
  /** Where it is (in the new document, for a removed one the old). */
  section: 'steps' | 'finally';
  change: 'added' | 'removed' | 'changed';
  /** The fields that differ (for added and removed steps: every field). */
  fields: FieldChange[];
}

/** The differences between a registered version and a document. */
export interface WorkflowDiff {
  /** The workflow's name, from the document. */
  workflow: string;
  /** The registered version compared against; 0 when no workflow of that name is registered (every step is added). */
  version: number;
  /** True when the documents have the same content (their text may differ in comments or layout). */
  equal: boolean;
  /** Changes to the workflow's own fields (everything but steps and finally). */
  fields: FieldChange[];
  /** Steps added, removed or changed, in the new document's order, removed ones last. */
  steps: StepChange[];
}

type Doc = Record<string, unknown>;

/** Parses a workflow document's text (YAML or JSON) into a value; `what` names it in errors. */
export function parseWorkflowText(text: string, what: string): Doc {
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length) throw new InvalidInputError(`${what} is not valid YAML: ${doc.errors[0].message.split('\n')[0]}`, { hint: `\`drover validate\` shows every problem with its line` });
  const value = doc.toJS() as unknown;
  if (!isObject(value)) throw new InvalidInputError(`${what} is not a workflow document (a mapping with "name" and "steps")`);
  return value;
}

/** The changes from `before` (a registered version, or undefined for none) to `after`. */
export function diffWorkflows(before: Doc | undefined, after: Doc, version: number): WorkflowDiff {
  const old = before ?? {};
  const fields = diffValues(without(old), without(after), '');
  const steps: StepChange[] = [];
  const oldSteps = stepMap(old);
  const newSteps = stepMap(after);
  for (const [id, { section, step }] of newSteps) {
    const prior = oldSteps.get(id);
    if (!prior) steps.push({ id, section, change: 'added', fields: diffValues({}, step, '') });
    else {
      const changed = [...(prior.section !== section ? [{ path: '(section)', before: prior.section, after: section }] : []), ...diffValues(prior.step, step, '')];
      if (changed.length) steps.push({ id, section, change: 'changed', fields: changed });
    }
  }
  for (const [id, { section, step }] of oldSteps) if (!newSteps.has(id)) steps.push({ id, section, change: 'removed', fields: diffValues(step, {}, '') });
  return { workflow: typeof after.name === 'string' ? after.name : '', version, equal: fields.length === 0 && steps.length === 0, fields, steps };
}

/** Steps and finally steps by id, in document order (a step without an id is keyed by its position). */
function stepMap(doc: Doc): Map<string, { section: 'steps' | 'finally'; step: Doc }> {
  const out = new Map<string, { section: 'steps' | 'finally'; step: Doc }>();
  for (const section of ['steps', 'finally'] as const) {
    const list = doc[section];
    if (!Array.isArray(list)) continue;
    list.forEach((s: unknown, i) => {
      const step = isObject(s) ? s : { value: s };
      out.set(typeof step.id === 'string' ? step.id : `${section}[${i}]`, { section, step });
    });
  }
  return out;
}

function without(doc: Doc): Doc {
  const { steps: _steps, finally: _finally, ...rest } = doc;
  return rest;
}

/** Field changes between two values: mappings field by field, anything else (lists included) as a whole. */
function diffValues(a: unknown, b: unknown, path: string): FieldChange[] {
  if (isObject(a) && isObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    return keys.flatMap((k) => {
      const p = path ? `${path}.${k}` : k;
      if (!(k in b)) return isObject(a[k]) ? diffValues(a[k], {}, p) : [{ path: p, before: a[k] }];
      if (!(k in a)) return isObject(b[k]) ? diffValues({}, b[k], p) : [{ path: p, after: b[k] }];
      return diffValues(a[k], b[k], p);
    });
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [{ path, before: a, after: b }];
}

function isObject(v: unknown): v is Doc {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
