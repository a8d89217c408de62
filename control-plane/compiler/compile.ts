/**
 * compile(source, params) -> plan. Pure and deterministic: the same document
 * and params always give the same plan and hash. Every problem found is
 * reported at once, each with its path and (for YAML) line and column.
 */
import { createHash } from 'node:crypto';
import type { z } from 'zod';
import type { Problem } from '../errors.js';
import { parseDuration } from './duration.js';
import { canonicalizeTemplates, checkExpression, hasTemplate, TEMPLATE } from './expressions.js';
import type { RunPlan, StepPlan } from './plan.js';
import { KNOWN_KEYS, workflowSchema, type ParamDoc, type StepDoc, type WorkflowDoc } from './schema.js';
import { formatPath, parseSource, type ParsedSource, type PathSegment } from './source.js';
import { didYouMean } from './suggest.js';

export interface CompileInput {
  source: string;
  params: Record<string, string>;
}

export interface CompileResult {
  plan?: RunPlan;
  /** Errors and warnings; a plan exists only when there is no error. */
  problems: Problem[];
}

class Problems {
  readonly list: Problem[] = [];
  constructor(private readonly src: ParsedSource) {}
  add(path: PathSegment[], message: string, severity: Problem['severity'] = 'error') {
    const { line, column } = this.src.position(path);
    this.list.push({ path: formatPath(path), line, column, message, severity });
  }
  get hasErrors() {
    return this.list.some((p) => p.severity === 'error');
  }
}

export function compile(input: CompileInput): CompileResult {
  const src = parseSource(input.source);
  const problems = new Problems(src);
  for (const e of src.syntaxErrors) {
    problems.list.push({ path: '', line: e.line, column: e.column, message: `invalid YAML: ${e.message}`, severity: 'error' });
  }
  if (src.syntaxErrors.length) return { problems: problems.list };
  if (typeof src.value !== 'object' || src.value === null || Array.isArray(src.value)) {
    problems.add([], 'a workflow document is a mapping with "name" and "steps" (see examples/)');
    return { problems: problems.list };
  }

  const parsed = workflowSchema.safeParse(src.value);
  if (!parsed.success) reportSchemaIssues(parsed.error.issues, problems);
  // Graph and expression checks run on the raw document too, so all problems come out at once.
  checkGraph(src.value as Record<string, unknown>, problems);
  checkExpressions(src.value as WorkflowDoc, problems);
  if (!parsed.success || problems.hasErrors) return { problems: problems.list };

  const wf = parsed.data;
  const params = bindParams(wf.params ?? {}, input.params, problems);
  if (problems.hasErrors) return { problems: problems.list };

  const plan = buildPlan(wf, params);
  return { plan, problems: problems.list };
}

function reportSchemaIssues(issues: z.core.$ZodIssue[], problems: Problems) {
  for (const issue of issues) {
    const path = issue.path as PathSegment[];
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeysFor(path);
      for (const key of issue.keys) {
        problems.add([...path, key], `unknown field "${key}"${didYouMean(key, known)}; allowed here: ${known.join(', ')}`);
      }
    } else if (issue.code === 'invalid_type' && issue.input === undefined) {
      problems.add(path, `missing required field "${path[path.length - 1]}"`);
    } else {
      problems.add(path, issue.message.replace(/^Invalid input: /, ''));
    }
  }
}

function knownKeysFor(path: PathSegment[]): string[] {
  const last = path[path.length - 1];
  const parent = path[path.length - 2];
  if (path.length === 0) return KNOWN_KEYS.workflow;
  if (last === 'target') return KNOWN_KEYS.target;
  if (last === 'retry') return KNOWN_KEYS.retry;
  if (parent === 'params') return KNOWN_KEYS.param;
  if ((parent === 'steps' || parent === 'finally') && typeof last === 'number') return KNOWN_KEYS.step;
  return [];
}

interface RawStep {
  id: string;
  path: PathSegment[];
  needs: unknown;
  isFinally: boolean;
}

function rawSteps(doc: Record<string, unknown>): RawStep[] {
  const out: RawStep[] = [];
  for (const section of ['steps', 'finally'] as const) {
    const list = doc[section];
    if (!Array.isArray(list)) continue;
    list.forEach((s, i) => {
      if (s && typeof s === 'object' && typeof (s as { id?: unknown }).id === 'string') {
        out.push({ id: (s as { id: string }).id, path: [section, i], needs: (s as { needs?: unknown }).needs, isFinally: section === 'finally' });
      }
    });
  }
  return out;
}

/** Duplicate ids, unknown or self needs, and cycles. */
function checkGraph(doc: Record<string, unknown>, problems: Problems) {
  const steps = rawSteps(doc);
  const seen = new Map<string, PathSegment[]>();
  for (const s of steps) {
    const first = seen.get(s.id);
    if (first) problems.add([...s.path, 'id'], `duplicate step id "${s.id}" (first used at ${formatPath(first)}); step ids must be unique`);
    else seen.set(s.id, s.path);
  }
  const ids = [...seen.keys()];
  const edges = new Map<string, string[]>();
  for (const s of steps) {
    if (!Array.isArray(s.needs)) continue;
    const deps: string[] = [];
    s.needs.forEach((n, j) => {
      if (typeof n !== 'string') return;
      if (n === s.id) problems.add([...s.path, 'needs', j], `step "${s.id}" cannot need itself`);
      else if (!seen.has(n)) problems.add([...s.path, 'needs', j], `unknown step "${n}" in needs${didYouMean(n, ids)}`);
      else if (!s.isFinally && steps.find((o) => o.id === n)?.isFinally)
        problems.add([...s.path, 'needs', j], `step "${s.id}" cannot need finally step "${n}": finally steps run after all others`);
      else deps.push(n);
    });
    if (!edges.has(s.id)) edges.set(s.id, deps);
  }
  const cycle = findCycle(ids, edges);
  if (cycle) {
    const at = steps.find((s) => s.id === cycle[0]);
    problems.add(at ? [...at.path, 'needs'] : [], `dependency cycle: ${cycle.join(' -> ')}; remove one of these needs`);
  }
}

/** Returns one cycle as a list of ids (first repeated at the end), if any. */
export function findCycle(ids: string[], edges: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (id: string): string[] | undefined => {
    state.set(id, 1);
    stack.push(id);
    for (const dep of edges.get(id) ?? []) {
      if (state.get(dep) === 1) return [...stack.slice(stack.indexOf(dep)), dep];
      if (!state.has(dep)) {
        const found = visit(dep);
        if (found) return found;
      }
    }
    stack.pop();
    state.set(id, 2);
    return undefined;
  };
  for (const id of [...ids].sort()) {
    if (!state.has(id)) {
      const found = visit(id);
      if (found) return found;
    }
  }
  return undefined;
}

function allSteps(wf: WorkflowDoc): { step: StepDoc; path: PathSegment[]; isFinally: boolean }[] {
  return [
    ...wf.steps.map((step, i) => ({ step, path: ['steps', i] as PathSegment[], isFinally: false })),
    ...(wf.finally ?? []).map((step, i) => ({ step, path: ['finally', i] as PathSegment[], isFinally: true })),
  ];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * No ${{ }} in shell text; every template parses and refers to known params
 * and needed steps. Runs on the raw document, so it skips what has the wrong shape.
 */
function checkExpressions(raw: WorkflowDoc, problems: Problems) {
  const wf: WorkflowDoc = {
    ...raw,
    params: isObject(raw.params) ? raw.params : {},
    env: isObject(raw.env) ? raw.env : {},
    steps: (Array.isArray(raw.steps) ? raw.steps : []).map((s) => (isObject(s) ? s : {}) as StepDoc),
    finally: (Array.isArray(raw.finally) ? raw.finally : []).map((s) => (isObject(s) ? s : {}) as StepDoc),
  };
  const declared = Object.keys(wf.params ?? {});
  const checkTemplates = (text: string, path: PathSegment[], needs: string[] | undefined) => {
    for (const m of text.matchAll(TEMPLATE)) checkOne(m[1], path, needs);
  };
  const checkOne = (expr: string, path: PathSegment[], needs: string[] | undefined) => {
    const res = checkExpression(expr);
    if (res.error) return problems.add(path, `invalid expression "${expr.trim()}": ${res.error}`);
    for (const p of res.params) {
      if (!declared.includes(p)) problems.add(path, `unknown param "${p}"${didYouMean(p, declared)}; declare it under params`);
    }
    for (const s of res.steps) {
      if (needs && !needs.includes(s)) problems.add(path, `expression refers to step "${s}", which is not in this step's needs; add it to needs`);
    }
  };
  for (const [k, v] of Object.entries(wf.env ?? {})) {
    if (typeof v === 'string') checkTemplates(v, ['env', k], []);
  }
  for (const { step: raw, path } of allSteps(wf)) {
    const step = {
      ...raw,
      run: typeof raw.run === 'string' ? raw.run : '',
      env: isObject(raw.env) ? raw.env : {},
      needs: Array.isArray(raw.needs) ? raw.needs : [],
      when: typeof raw.when === 'string' ? raw.when : undefined,
    };
    if (hasTemplate(step.run)) {
      const envNames = [...step.run.matchAll(TEMPLATE)].map((m) => envNameFor(m[1]));
      const rewrite = [...step.run.matchAll(TEMPLATE)].reduce((t, m, i) => t.replace(m[0], `"$${envNames[i]}"`), step.run);
      const env = [...step.run.matchAll(TEMPLATE)].map((m, i) => `${envNames[i]}: "${m[0]}"`).join(', ');
      problems.add(
        [...path, 'run'],
        `an expression may not be pasted into shell text (it would be run as code); pass it through env instead: run: ${rewrite}  env: { ${env} }`,
      );
    }
    for (const [k, v] of Object.entries(step.env ?? {})) {
      if (typeof v === 'string') checkTemplates(v, [...path, 'env', k], step.needs ?? []);
    }
    if (step.when) checkOne(step.when.replace(/^\$\{\{([\s\S]*)\}\}$/, '$1'), [...path, 'when'], step.needs ?? []);
  }
}

function envNameFor(expr: string): string {
  const last = expr.trim().split(/[.\[\]"']+/).filter(Boolean).pop() ?? 'VALUE';
  return last.replace(/[^A-Za-z0-9]+/g, '_').toUpperCase() || 'VALUE';
}

/** Checks given params against declarations and fills defaults; values stay strings on the wire. */
function bindParams(decl: Record<string, ParamDoc>, given: Record<string, string>, problems: Problems): Record<string, string> {
  const out: Record<string, string> = {};
  const names = Object.keys(decl);
  for (const name of Object.keys(given)) {
    if (!decl[name]) problems.add(['params'], `unknown param "${name}"${didYouMean(name, names)}; this workflow takes: ${names.join(', ') || 'no params'}`);
  }
  for (const [name, p] of Object.entries(decl)) {
    const path = ['params', name];
    let value = given[name];
    if (value === undefined && p.default !== undefined) value = Array.isArray(p.default) ? JSON.stringify(p.default) : String(p.default);
    if (value === undefined) {
      if (p.required !== false) problems.add(path, `missing param "${name}" (${p.type}${p.description ? `: ${p.description}` : ''}); pass it with -p ${name}=VALUE`);
      continue;
    }
    const err = checkParamValue(p, value);
    if (err) problems.add(path, `param "${name}" ${err}`);
    out[name] = value;
  }
  return out;
}

function checkParamValue(p: ParamDoc, value: string): string | undefined {
  if (p.type === 'number' && (value.trim() === '' || !Number.isFinite(Number(value)))) return `must be a number, got "${value}"`;
  if (p.type === 'boolean' && value !== 'true' && value !== 'false') return `must be true or false, got "${value}"`;
  if (p.type === 'list') {
    try {
      if (!Array.isArray(JSON.parse(value))) throw new Error();
    } catch {
      return `must be a JSON list like ["a","b"], got "${value}"`;
    }
  }
  if (p.enum && !p.enum.map(String).includes(value)) return `must be one of ${p.enum.join(', ')}, got "${value}"`;
  if (p.pattern && !new RegExp(p.pattern).test(value)) return `must match /${p.pattern}/, got "${value}"`;
  return undefined;
}

function buildPlan(wf: WorkflowDoc, params: Record<string, string>): RunPlan {
  const regularIds = wf.steps.map((s) => s.id);
  const steps: StepPlan[] = allSteps(wf).map(({ step, isFinally }) => {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...wf.env, ...step.env })) env[k] = canonicalizeTemplates(String(v));
    const retry = step.retry;
    return {
      id: step.id,
      // finally steps wait for every regular step, whatever its outcome.
      needs: isFinally ? [...regularIds, ...(step.needs ?? [])] : [...(step.needs ?? [])],
      run: step.run,
      env,
      target: { labels: { ...step.target?.labels }, agent: step.target?.agent ?? '' },
      timeoutMs: parseDuration(step.timeout) ?? 0,
      retry: {
        attempts: retry?.attempts ?? 1,
        backoff: retry?.backoff ?? 'fixed',
        initialMs: parseDuration(retry?.initial) ?? 1000,
        maxMs: parseDuration(retry?.max) ?? 60_000,
        jitter: retry?.jitter ?? 0,
        retryOn: retry?.retryOn ?? [],
      },
      when: step.when ? canonicalizeTemplates(step.when).replace(/^\$\{\{\s*([\s\S]*?)\s*\}\}$/, '$1') : '',
      continueOnError: step.continueOnError ?? false,
      isFinally,
    };
  });
  const deadlineMs = 0;
  const hash = createHash('sha256').update(canonicalJson({ workflow: wf.name, params, deadlineMs, steps })).digest('hex');
  return { workflow: wf.name, hash, params, deadlineMs, steps };
}

/** JSON with sorted keys, so equal content always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}
