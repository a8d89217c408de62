/**
 * compile(source, params, fleet) -> plan. Pure and deterministic: the same
 * document, params and fleet always give the same plan and hash. Every
 * problem found is reported at once, each with its path and (for YAML) line
 * and column. Checks run on the raw document as far as its shape allows, so
 * a type error in one field does not hide a cycle in another.
 */
import { createHash } from 'node:crypto';
import { evaluate } from '@marcbachmann/cel-js';
import type { z } from 'zod';
import type { Problem } from '../errors.js';
import { describeTarget, matches, proxiesFor, type FleetAgent, type FleetDevice } from '../model/target.js';
import { parseDuration } from '../../common/duration.js';
import { compilePattern, MAX_PATTERN_INPUT, PatternError, type Pattern } from '../../common/pattern.js';
import {
  canonicalize,
  canonicalizeTemplates,
  celEnvironment,
  checkExpression,
  hasTemplate,
  stepRefs,
  TEMPLATE,
  unwrap,
  type ParamType,
} from './expressions.js';
import type { GroupPlan, LabelExpression, RunPlan, SshPlan, StepKind, StepPlan, TargetPlan } from '../model/plan.js';
import {
  DEFAULT_COMMAND_TIMEOUT_MS,
  DEFAULT_ERROR_PATTERN,
  DEFAULT_NETWORK,
  DEFAULT_PROMPT,
  KNOWN_KEYS,
  RESERVED_KINDS,
  STEP_KINDS,
  workflowSchema,
  type ParamDoc,
  type StepDoc,
  type WorkflowDoc,
} from './schema.js';
import { formatPath, parseSource, type ParsedSource, type PathSegment } from './source.js';
import { didYouMean } from './suggest.js';

export interface CompileInput {
  source: string;
  params: Record<string, string>;
  /** The fleet now: fan-outs expand over it, and targets nothing matches are warned about. */
  fleet?: FleetAgent[];
  /**
   * The device inventory: ssh steps resolve their devices in it (an unknown
   * device is an error in "run" mode, a warning in "validate" mode).
   */
  devices?: FleetDevice[];
  /** "validate" checks the document alone: params may be missing and fan-outs are not expanded. */
  mode?: 'run' | 'validate';
  /** Names of the stored secrets: a step using another is an error (absent: not checked). */
  secrets?: string[];
}

export interface CompileResult {
  plan?: RunPlan;
  /** The workflow's name, when it could be read. */
  workflow: string;
  /** Its description, when it has one. */
  description?: string;
  /** Errors and warnings; a plan exists only when there is no error. */
  problems: Problem[];
  /** Values of params declared `secret: true`, kept out of the plan (the run seals them). */
  secretParams?: Record<string, string>;
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

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function compile(input: CompileInput): CompileResult {
  const mode = input.mode ?? 'run';
  const src = parseSource(input.source);
  const problems = new Problems(src);
  for (const e of src.syntaxErrors) {
    problems.list.push({ path: '', line: e.line, column: e.column, message: `invalid YAML: ${e.message}`, severity: 'error' });
  }
  if (src.syntaxErrors.length) return { workflow: '', problems: problems.list };
  if (!isObject(src.value)) {
    problems.add([], 'a workflow document is a mapping with "name" and "steps" (see examples/)');
    return { workflow: '', problems: problems.list };
  }
  const raw = src.value;
  const workflow = typeof raw.name === 'string' ? raw.name : '';

  const parsed = workflowSchema.safeParse(raw);
  if (!parsed.success) reportSchemaIssues(parsed.error.issues, problems);
  const steps = rawSteps(raw);
  checkGraph(steps, problems);
  const decl = isObject(raw.params) ? (raw.params as Record<string, ParamDoc>) : {};
  const typed = bindParams(decl, input.params, problems, mode);
  const secretNames = new Set(Object.entries(decl).filter(([, p]) => isObject(p) && p.secret === true).map(([n]) => n));
  checkSteps(raw, steps, paramTypes(decl, typed), problems);
  checkSecrets(raw, steps, secretNames, mode === 'run' ? input.secrets : undefined, problems);
  if (!parsed.success || problems.hasErrors) return { workflow, problems: problems.list };
  if (mode === 'validate') {
    if (input.devices) checkDeviceRefs(parsed.data, input.devices, input.fleet, problems);
    return { workflow, description: parsed.data.description, problems: problems.list };
  }

  const secretParams: Record<string, string> = {};
  for (const n of secretNames) if (typeof typed[n] === 'string') secretParams[n] = typed[n] as string;
  const plan = buildPlan(parsed.data, typed, secretNames, input.fleet, input.devices ?? [], mode, problems);
  if (problems.hasErrors) return { workflow, problems: problems.list };
  return { workflow, description: parsed.data.description, plan, problems: problems.list, secretParams };
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
    } else if (issue.code === 'invalid_union' && typeof issue.input === 'object' && issue.input !== null) {
      // A union of a shorthand and an object form: report the object form's problems.
      const objectErrors = issue.errors.find((errs) => errs.some((e) => e.code !== 'invalid_type'));
      if (objectErrors) reportSchemaIssues(objectErrors.map((e) => ({ ...e, path: [...path, ...e.path] })), problems);
      else problems.add(path, issue.message.replace(/^Invalid input: /, ''));
    } else {
      problems.add(path, issue.message.replace(/^Invalid input: /, ''));
    }
  }
}

function knownKeysFor(path: PathSegment[]): string[] {
  const last = path[path.length - 1];
  const parent = path[path.length - 2];
  if (path.length === 0) return KNOWN_KEYS.workflow;
  if (typeof last === 'string' && last in KNOWN_KEYS && last !== 'workflow' && last !== 'step') return KNOWN_KEYS[last as keyof typeof KNOWN_KEYS];
  if (parent === 'params') return KNOWN_KEYS.param;
  if (parent === 'matchExpressions') return KNOWN_KEYS.matchExpressions;
  if (parent === 'commands') return KNOWN_KEYS.commands;
  if ((parent === 'steps' || parent === 'finally') && typeof last === 'number') return KNOWN_KEYS.step;
  return [];
}

interface RawStep {
  id: string;
  path: PathSegment[];
  doc: Record<string, unknown>;
  needs: string[];
  isFinally: boolean;
}

function rawSteps(doc: Record<string, unknown>): RawStep[] {
  const out: RawStep[] = [];
  for (const section of ['steps', 'finally'] as const) {
    const list = doc[section];
    if (!Array.isArray(list)) continue;
    list.forEach((s, i) => {
      if (!isObject(s) || typeof s.id !== 'string') return;
      const needs = Array.isArray(s.needs) ? s.needs.filter((n): n is string => typeof n === 'string') : [];
      out.push({ id: s.id, path: [section, i], doc: s, needs, isFinally: section === 'finally' });
    });
  }
  return out;
}

/** Duplicate ids, unknown or self needs, and cycles. */
function checkGraph(steps: RawStep[], problems: Problems) {
  const seen = new Map<string, RawStep>();
  for (const s of steps) {
    const first = seen.get(s.id);
    if (first) problems.add([...s.path, 'id'], `duplicate step id "${s.id}" (first used at ${formatPath(first.path)}); step ids must be unique`);
    else seen.set(s.id, s);
  }
  const ids = [...seen.keys()];
  const edges = new Map<string, string[]>();
  for (const s of steps) {
    const deps: string[] = [];
    (Array.isArray(s.doc.needs) ? s.doc.needs : []).forEach((n: unknown, j: number) => {
      if (typeof n !== 'string') return;
      const at = [...s.path, 'needs', j];
      if (n === s.id) problems.add(at, `step "${s.id}" cannot need itself`);
      else if (!seen.has(n)) problems.add(at, `unknown step "${n}" in needs${didYouMean(n, ids)}`);
      else if (!s.isFinally && seen.get(n)!.isFinally) problems.add(at, `step "${s.id}" cannot need finally step "${n}": finally steps run after all others`);
      else deps.push(n);
    });
    if (!edges.has(s.id)) edges.set(s.id, deps);
  }
  const cycle = findCycle(ids, edges);
  if (cycle) problems.add([...seen.get(cycle[0])!.path, 'needs'], `dependency cycle: ${cycle.join(' -> ')}; remove one of these needs`);
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

/** CEL types of the params: numbers are int when their value is whole, else double. */
function paramTypes(decl: Record<string, ParamDoc>, typed: Record<string, unknown>): Record<string, ParamType> {
  const out: Record<string, ParamType> = {};
  for (const [name, p] of Object.entries(decl)) {
    const type = isObject(p) && typeof p.type === 'string' ? p.type : 'string';
    const v = typed[name] ?? (isObject(p) ? p.default : undefined);
    out[name] = type === 'number' ? (typeof v === 'number' && !Number.isInteger(v) ? 'double' : 'int') : type === 'boolean' ? 'bool' : type === 'list' ? 'list' : 'string';
  }
  return out;
}

/** Fields whose text may hold ${{ }} templates, per step kind (paths below the step). */
function templateFields(step: Record<string, unknown>): [PathSegment[], string][] {
  const out: [PathSegment[], string][] = [];
  const str = (path: PathSegment[], v: unknown) => typeof v === 'string' && out.push([path, v]);
  if (isObject(step.env)) for (const [k, v] of Object.entries(step.env)) str(['env', k], v);
  if (Array.isArray(step.command)) step.command.forEach((v, i) => str(['command', i], v));
  if (isObject(step.http)) {
    str(['http', 'url'], step.http.url);
    str(['http', 'body'], step.http.body);
    if (isObject(step.http.headers)) for (const [k, v] of Object.entries(step.http.headers)) str(['http', 'headers', k], v);
  }
  if (isObject(step.file)) {
    str(['file', 'path'], step.file.path);
    str(['file', 'content'], step.file.content);
  }
  if (isObject(step.ssh)) {
    str(['ssh', 'host'], step.ssh.host);
    if (Array.isArray(step.ssh.commands)) {
      step.ssh.commands.forEach((c, i) => (isObject(c) ? str(['ssh', 'commands', i, 'command'], c.command) : str(['ssh', 'commands', i], c)));
    }
  }
  return out;
}

/** Step kinds, shell-text safety, expressions and their references. */
function checkSteps(raw: Record<string, unknown>, steps: RawStep[], types: Record<string, ParamType>, problems: Problems) {
  const declared = Object.keys(types);
  const regular = steps.filter((s) => !s.isFinally).map((s) => s.id);
  const envFor = (withItem: boolean) => celEnvironment(types, withItem);
  const checkExpr = (expr: string, path: PathSegment[], needs: string[] | undefined, withItem: boolean, wantBool = false) => {
    const res = checkExpression(envFor(withItem), expr);
    if (res.error) {
      const known = /No such key: (\S+)/.exec(res.error);
      let msg = `invalid expression "${expr.trim()}": ${res.error}`;
      if (/Unknown variable: item/.test(res.error)) msg = `"item" is only available in forEach steps (in "${expr.trim()}")`;
      else if (known && /\bparams\./.test(expr)) msg = `unknown param "${known[1]}"${didYouMean(known[1], declared)} in "${expr.trim()}"; declare it under params`;
      return problems.add(path, msg);
    }
    if (wantBool && res.type && res.type !== 'bool' && res.type !== 'dyn') {
      problems.add(path, `condition "${expr.trim()}" is of type ${res.type}; a condition must be true or false`);
    }
    for (const s of stepRefs(expr)) {
      if (needs && !needs.includes(s)) problems.add(path, `expression refers to step "${s}", which is not in this step's needs; add it to needs`);
    }
  };
  const checkTemplates = (text: string, path: PathSegment[], needs: string[] | undefined, withItem: boolean) => {
    for (const m of text.matchAll(TEMPLATE)) checkExpr(m[1], path, needs, withItem);
  };

  if (isObject(raw.env)) for (const [k, v] of Object.entries(raw.env)) if (typeof v === 'string') checkTemplates(v, ['env', k], [], false);

  for (const s of steps) {
    const { doc, path } = s;
    const kinds = [...STEP_KINDS, ...RESERVED_KINDS].filter((k) => doc[k] !== undefined);
    for (const k of kinds.filter((k): k is (typeof RESERVED_KINDS)[number] => (RESERVED_KINDS as readonly string[]).includes(k))) {
      problems.add([...path, k], `step kind "${k}" is reserved for a later release and cannot run yet; use one of ${STEP_KINDS.join(', ')}`);
    }
    if (kinds.length === 0) problems.add(path, `step "${s.id}" has nothing to do: give it one of ${STEP_KINDS.join(', ')}`);
    if (kinds.length > 1) problems.add([...path, kinds[1]], `step "${s.id}" has more than one kind (${kinds.join(', ')}); a step does exactly one thing`);

    const forEach = typeof doc.forEach === 'string';
    const needs = s.isFinally ? [...regular, ...s.needs] : s.needs;
    for (const [field, text] of [
      ['run', doc.run],
      ['script', isObject(doc.script) ? doc.script.body : doc.script],
    ] as const) {
      if (typeof text !== 'string' || !hasTemplate(text)) continue;
      const at = field === 'script' && isObject(doc.script) ? [...path, 'script', 'body'] : [...path, field];
      problems.add(at, shellRewrite(text));
    }
    for (const [sub, text] of templateFields(doc)) checkTemplates(text, [...path, ...sub], needs, forEach);
    if (typeof doc.when === 'string') checkExpr(unwrap(doc.when), [...path, 'when'], needs, forEach, true);
    if (forEach) {
      const expr = unwrap(doc.forEach as string);
      checkExpr(expr, [...path, 'forEach'], [], false);
      if (stepRefs(expr).length) problems.add([...path, 'forEach'], 'forEach is expanded before the run starts, so it may use params but not step outputs');
      if (isObject(doc.target) && doc.target.strategy === 'all') {
        problems.add([...path, 'forEach'], 'forEach and target.strategy "all" cannot be combined; fan out over agents or over items, not both');
      }
    }
    const t = isObject(doc.target) ? doc.target : {};
    if ((t.maxParallel !== undefined || t.maxFailures !== undefined) && !forEach && t.strategy !== 'all') {
      problems.add([...path, 'target'], 'maxParallel and maxFailures apply to fan-outs: add strategy: all or forEach');
    }
    if (isObject(doc.ssh)) checkSsh(doc.ssh, t, path, problems);
    else if (t.device !== undefined) {
      problems.add([...path, 'target', 'device'], 'target.device selects a network device, which only ssh steps drive; use target.agent or labels to pick agents');
    }
  }
}

/** `secrets.NAME` / `secrets["NAME"]` in an expression; a `secrets` not of either form is dynamic. */
const SECRET_REF = /\bsecrets(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*"([^"]+)"\s*\]|\[\s*'([^']+)'\s*\])/g;
const PARAM_REF = /\bparams(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*"([^"]+)"\s*\]|\[\s*'([^']+)'\s*\])/g;
/** Names in a step's `secrets:` list become environment variables of the same name. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Stored secrets and params an expression names. */
export function secretRefs(expr: string): { secrets: string[]; params: string[]; dynamic: boolean } {
  const secrets = [...expr.matchAll(SECRET_REF)].map((m) => m[1] ?? m[2] ?? m[3]);
  const params = [...expr.matchAll(PARAM_REF)].map((m) => m[1] ?? m[2] ?? m[3]);
  const dynamic = (expr.match(/\bsecrets\b/g) ?? []).length > secrets.length;
  return { secrets, params, dynamic };
}

/**
 * Where secrets may go: stored secrets (`secrets:` or `${{ secrets.NAME }}`)
 * must exist and be named literally; neither they nor secret params may feed
 * forEach, which is expanded into the plan.
 */
function checkSecrets(raw: Record<string, unknown>, steps: RawStep[], secretParams: Set<string>, known: string[] | undefined, problems: Problems) {
  const unknown = (name: string, at: PathSegment[]) => {
    if (known && !known.includes(name)) {
      problems.add(at, `secret "${name}" is not set on this control plane${didYouMean(name, known)}; set it with \`drover secret set ${name}\` (see \`drover secret list\`)`);
    }
  };
  const checkText = (text: string, at: PathSegment[]) => {
    for (const m of text.matchAll(TEMPLATE)) {
      const refs = secretRefs(m[1]);
      if (refs.dynamic) problems.add(at, `secrets must be named literally (secrets.NAME or secrets["NAME"]) in "${m[1].trim()}", so the control plane knows which to send`);
      for (const n of refs.secrets) unknown(n, at);
    }
  };
  if (isObject(raw.env)) for (const [k, v] of Object.entries(raw.env)) if (typeof v === 'string') checkText(v, ['env', k]);
  for (const s of steps) {
    const { doc, path } = s;
    if (Array.isArray(doc.secrets)) {
      doc.secrets.forEach((n: unknown, i: number) => {
        if (typeof n !== 'string') return;
        const at = [...path, 'secrets', i];
        if (!ENV_NAME.test(n)) problems.add(at, `secret "${n}" cannot be an environment variable name; use env: { NAME: "\${{ secrets["${n}"] }}" } instead`);
        else unknown(n, at);
      });
    }
    for (const [sub, text] of templateFields(doc)) checkText(text, [...path, ...sub]);
    if (typeof doc.when === 'string') checkText(`\${{ ${unwrap(doc.when)} }}`, [...path, 'when']);
    if (typeof doc.forEach === 'string') {
      const refs = secretRefs(unwrap(doc.forEach));
      const secretParam = refs.params.find((n) => secretParams.has(n));
      if (refs.secrets.length || refs.dynamic || secretParam) {
        problems.add([...path, 'forEach'], `forEach may not use ${secretParam ? `secret param "${secretParam}"` : 'secrets'}: its items are expanded into the plan, which is stored and shown`);
      }
    }
  }
}

/** Rules of an ssh step that span fields: where the device comes from, and its patterns. */
function checkSsh(ssh: Record<string, unknown>, t: Record<string, unknown>, path: PathSegment[], problems: Problems) {
  const at = (...sub: PathSegment[]) => [...path, ...sub];
  const inline = ssh.host !== undefined;
  const selector = t.labels !== undefined || t.matchExpressions !== undefined;
  if (ssh.device !== undefined && t.device !== undefined) {
    problems.add(at('ssh', 'device'), 'the device is named twice (ssh.device and target.device); keep one');
  }
  const named = ssh.device !== undefined || t.device !== undefined;
  if (inline && (named || selector)) {
    problems.add(at('ssh', 'host'), 'an ssh step drives a registered device (ssh.device, target.device or target.labels) or an inline ssh.host, not both');
  } else if (named && selector) {
    problems.add(at('target'), 'a named device and a label selector cannot be combined: drop target.labels/matchExpressions, or the device name');
  } else if (!inline && !named && !selector) {
    problems.add(
      at('ssh'),
      'an ssh step needs a device: ssh.device: NAME (see `drover device list`), target.labels to select registered devices, or an inline ssh.host with user and credential',
    );
  }
  if (inline) {
    for (const f of ['user', 'credential'] as const) {
      if (ssh[f] === undefined) problems.add(at('ssh'), `an inline ssh.host needs ssh.${f} (or register the device with \`drover device add\` and use ssh.device)`);
    }
  } else {
    for (const f of ['port', 'user', 'credential', 'network'] as const) {
      if (ssh[f] !== undefined) {
        problems.add(at('ssh', f), `ssh.${f} is only for an inline ssh.host; a registered device's ${f} comes from the inventory (change it with \`drover device add NAME --replace ...\`)`);
      }
    }
  }
  if (t.agent !== undefined) {
    problems.add(at('target', 'agent'), "target.agent does not apply to ssh steps: they run on a proxy agent for the device's network (an agent labelled proxy=<network>)");
  }
  if (t.strategy === 'all' && !selector) {
    problems.add(at('target', 'strategy'), 'strategy: all fans an ssh step out over the devices target.labels selects; with one device there is nothing to fan out');
  }
  for (const f of ['errorPattern', 'prompt'] as const) {
    if (typeof ssh[f] === 'string' && ssh[f] !== '') checkedPattern(ssh[f], `ssh.${f}`, at('ssh', f), problems);
  }
  if (Array.isArray(ssh.commands)) {
    const names = new Map<string, number>();
    ssh.commands.forEach((c: unknown, i: number) => {
      const text = isObject(c) ? c.command : c;
      if (typeof text === 'string' && /[\r\n]/.test(text)) {
        problems.add(at('ssh', 'commands', i), 'a command may not contain a line break: give each command its own list item');
      }
      const name = isObject(c) && typeof c.name === 'string' ? c.name : `out_${i}`;
      const first = names.get(name);
      if (first !== undefined) problems.add(at('ssh', 'commands', i), `output name "${name}" is already used by ssh.commands[${first}]; output names must be unique`);
      else names.set(name, i);
    });
  }
}

/** The error for ${{ }} in shell text, with the env-based rewrite. */
function shellRewrite(text: string): string {
  const found = [...text.matchAll(TEMPLATE)];
  const names = found.map((m) => envNameFor(m[1]));
  // Inside double quotes the variable needs none of its own.
  const rewrite = found.reduce((t, m, i) => t.replace(`"${m[0]}"`, `"$${names[i]}"`).replace(m[0], `"$${names[i]}"`), text.trim());
  const env = [...new Set(found.map((m, i) => `${names[i]}: "${m[0]}"`))].join(', ');
  return `an expression may not be pasted into shell text (it would be run as code); pass it through env instead: run: ${rewrite}  env: { ${env} }`;
}

function envNameFor(expr: string): string {
  const last = expr.trim().split(/[.[\]"']+/).filter(Boolean).pop() ?? 'VALUE';
  return last.replace(/[^A-Za-z0-9]+/g, '_').toUpperCase() || 'VALUE';
}

/** Checks given params against declarations and fills defaults; returns typed values. */
function bindParams(decl: Record<string, ParamDoc>, given: Record<string, string>, problems: Problems, mode: 'run' | 'validate'): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const names = Object.keys(decl);
  for (const name of Object.keys(given)) {
    if (!(name in decl)) problems.add(['params'], `unknown param "${name}"${didYouMean(name, names)}; this workflow takes: ${names.join(', ') || 'no params'}`);
  }
  for (const [name, p] of Object.entries(decl)) {
    if (!isObject(p)) continue;
    const type = typeof p.type === 'string' ? p.type : 'string';
    const path = ['params', name];
    // Checked whether or not a value is given: a bad pattern is the document's error.
    const pattern = typeof p.pattern === 'string' && p.pattern !== '' ? checkedPattern(p.pattern, `param "${name}" pattern`, [...path, 'pattern'], problems) : undefined;
    let text = given[name];
    if (text === undefined && p.default !== undefined) text = Array.isArray(p.default) ? JSON.stringify(p.default) : String(p.default);
    if (text === undefined) {
      if (p.required !== false && mode === 'run') {
        problems.add(path, `missing param "${name}" (${type}${p.description ? `: ${p.description}` : ''}); pass it with -p ${name}=VALUE`);
      }
      continue;
    }
    const secret = p.secret === true;
    if (secret && type !== 'string') {
      problems.add([...path, 'secret'], `param "${name}" is secret, so it must be of type string (got ${type})`);
      continue;
    }
    const shown = secret ? '(the secret value)' : `"${text}"`;
    const typed = typedValue(type, text);
    if ('error' in typed) {
      problems.add(path, `param "${name}" ${typed.error}`);
      continue;
    }
    if (p.enum && !p.enum.map(String).includes(text)) problems.add(path, `param "${name}" must be one of ${p.enum.join(', ')}, got ${shown}`);
    if (pattern && type === 'string') {
      if (text.length > MAX_PATTERN_INPUT) {
        problems.add(path, `param "${name}" is ${text.length} characters long; a value checked against a pattern may have at most ${MAX_PATTERN_INPUT}`);
      } else if (!pattern.test(text)) {
        problems.add(path, `param "${name}" must match /${p.pattern}/, got ${shown}`);
      }
    }
    out[name] = typed.value;
  }
  return out;
}

/** A user's pattern compiled with RE2; one it refuses is a problem at `path`, with the reason. */
function checkedPattern(source: string, what: string, path: PathSegment[], problems: Problems): Pattern | undefined {
  try {
    return compilePattern(source, what);
  } catch (err) {
    if (!(err instanceof PatternError)) throw err;
    problems.add(path, err.message);
    return undefined;
  }
}

/** A param's typed value, or why the text is not one. */
function typedValue(type: string, text: string): { value: unknown } | { error: string } {
  if (type === 'number') {
    const n = Number(text);
    return text.trim() !== '' && Number.isFinite(n) ? { value: n } : { error: `must be a number, got "${text}"` };
  }
  if (type === 'boolean') {
    if (text === 'true' || text === 'false') return { value: text === 'true' };
    return { error: `must be true or false, got "${text}"` };
  }
  if (type === 'list') {
    try {
      const v: unknown = JSON.parse(text);
      if (Array.isArray(v)) return { value: v };
    } catch {
      // not JSON: reported below
    }
    return { error: `must be a JSON list like ["a","b"], got "${text}"` };
  }
  return { value: text };
}

/** CEL values of typed params: whole numbers are ints (BigInt), as the type check assumed. */
function celParams(typed: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(typed).map(([k, v]) => [k, typeof v === 'number' && Number.isInteger(v) ? BigInt(v) : v]));
}

function targetPlan(doc: StepDoc): TargetPlan {
  const t = doc.target ?? {};
  const device = t.device ?? doc.ssh?.device ?? '';
  const op = (o: string): LabelExpression['operator'] =>
    (({ in: 'In', notin: 'NotIn', exists: 'Exists', doesnotexist: 'DoesNotExist' }) as const)[o.toLowerCase() as 'in'];
  return {
    labels: { ...t.labels },
    matchExpressions: (t.matchExpressions ?? []).map((e) => ({ key: e.key, operator: op(e.operator), values: [...(e.values ?? [])] })),
    agent: t.agent ?? '',
    device,
    strategy: t.strategy ?? 'one',
  };
}

function kindOf(doc: StepDoc): StepKind {
  return STEP_KINDS.find((k) => doc[k] !== undefined)!;
}

/**
 * The devices an ssh step with a registered device drives: the named one, or
 * those its selector matches (exactly one for strategy one). 'inline' for an
 * inline host. Problems are reported with `severity` (errors for a run,
 * warnings when validating against the inventory now).
 */
function selectDevices(
  s: StepDoc,
  target: TargetPlan,
  devices: FleetDevice[],
  path: PathSegment[],
  problems: Problems,
  severity: Problem['severity'],
): FleetDevice[] | 'inline' {
  if (s.ssh?.host !== undefined) return 'inline';
  if (target.device) {
    const d = devices.find((x) => x.name === target.device);
    if (d) return [d];
    const at = s.ssh?.device !== undefined ? [...path, 'ssh', 'device'] : [...path, 'target', 'device'];
    problems.add(
      at,
      `no device named "${target.device}" in the inventory${didYouMean(target.device, devices.map((x) => x.name))}; register it with \`drover device add ${target.device} --host HOST --user USER --credential NAME\` (see \`drover device list\`)`,
      severity,
    );
    return [];
  }
  const selected = devices.filter((d) => matches({ name: d.name, labels: d.labels }, { ...target, agent: '' })).sort((a, b) => a.name.localeCompare(b.name));
  const want = describeTarget({ ...target, device: '' });
  if (selected.length === 0) {
    const known = [...new Set(devices.flatMap((d) => Object.entries(d.labels).map(([k, v]) => `${k}=${v}`)))].sort();
    problems.add([...path, 'target'], `no device in the inventory matches ${want}; device labels: ${known.join(' ') || 'none (no device registered: `drover device add`)'}`, severity);
  } else if (selected.length > 1 && target.strategy !== 'all') {
    const names = selected.map((d) => d.name);
    problems.add(
      [...path, 'target'],
      `${want} matches ${selected.length} devices (${names.slice(0, 8).join(', ')}${names.length > 8 ? ', …' : ''}); add strategy: all to run on each, or narrow the selector`,
      severity,
    );
  }
  return selected;
}

/** A step's ssh plan bound to a registered device. */
function onDevice(step: StepPlan, d: FleetDevice): StepPlan {
  const ssh: SshPlan = { ...step.ssh!, device: d.name, host: d.host, port: d.port, user: d.user, credential: d.credential, network: d.network, maxSessions: d.maxSessions };
  return { ...step, ssh, target: { ...step.target, device: d.name } };
}

/** validate mode with the inventory at hand: unknown devices and networks without proxies are warnings. */
function checkDeviceRefs(wf: WorkflowDoc, devices: FleetDevice[], fleet: FleetAgent[] | undefined, problems: Problems) {
  const declared = [...wf.steps.map((s, i) => ({ s, path: ['steps', i] as PathSegment[] })), ...(wf.finally ?? []).map((s, i) => ({ s, path: ['finally', i] as PathSegment[] }))];
  for (const { s, path } of declared) {
    if (!s.ssh) continue;
    const sel = selectDevices(s, targetPlan(s), devices, path, problems, 'warning');
    const networks = sel === 'inline' ? [s.ssh.network ?? DEFAULT_NETWORK] : [...new Set(sel.map((d) => d.network))];
    if (fleet) warnNoProxy(networks, fleet, path, problems);
  }
}

function warnNoProxy(networks: string[], fleet: FleetAgent[], path: PathSegment[], problems: Problems) {
  for (const n of networks) {
    if (!fleet.some((a) => a.state !== 'lost' && proxiesFor(a, n))) {
      problems.add([...path, 'ssh'], `no agent in the fleet proxies for network "${n}" now (start one with --label proxy=${n})`, 'warning');
    }
  }
}

function buildPlan(
  wf: WorkflowDoc,
  typed: Record<string, unknown>,
  secretParams: Set<string>,
  fleet: FleetAgent[] | undefined,
  devices: FleetDevice[],
  mode: 'run' | 'validate',
  problems: Problems,
): RunPlan {
  const declared = [...wf.steps.map((s) => ({ s, isFinally: false })), ...(wf.finally ?? []).map((s) => ({ s, isFinally: true }))];
  const regularIds = wf.steps.map((s) => s.id);
  const steps: StepPlan[] = [];
  const groups: GroupPlan[] = [];

  declared.forEach(({ s, isFinally }, index) => {
    const path: PathSegment[] = [isFinally ? 'finally' : 'steps', isFinally ? index - wf.steps.length : index];
    const target = targetPlan(s);
    const needs = isFinally ? [...regularIds, ...(s.needs ?? [])] : [...(s.needs ?? [])];
    const matching = s.ssh ? undefined : fleet?.filter((a) => matches(a, target) && a.state !== 'lost');
    if (matching && matching.length === 0) {
      problems.add([...path, 'target'], `no agent in the fleet matches ${describeTarget(target)} now`, 'warning');
    }
    let base = unitPlan(wf, s, target, needs, isFinally, secretParams);
    // ssh steps: a fan-out is over the selected devices (proxy agents are chosen by placement).
    let overDevices: FleetDevice[] | undefined;
    if (s.ssh) {
      const sel = selectDevices(s, target, devices, path, problems, 'error');
      if (sel !== 'inline' && target.strategy === 'all') overDevices = sel;
      else if (sel !== 'inline' && sel.length === 1) base = onDevice(base, sel[0]);
      if (fleet) warnNoProxy([...new Set(overDevices ? overDevices.map((d) => d.network) : [base.ssh!.network])], fleet, path, problems);
    }
    // Evaluated on the params as the plan shows them: whatever the expression, no secret value can reach the items.
    const shown = Object.fromEntries(Object.entries(typed).map(([k, v]) => [k, secretParams.has(k) ? SECRET_SHOWN : v]));
    const items = s.forEach !== undefined ? forEachItems(s.forEach, shown, [...path, 'forEach'], problems, mode) : undefined;
    const fanOut = target.strategy === 'all';
    if (!items && !fanOut) return void steps.push(base);

    const instances: StepPlan[] = items
      ? items.map((item, i) => ({ ...base, id: `${s.id}[${i}]`, parent: s.id, itemJson: JSON.stringify(item) }))
      : overDevices
        ? overDevices.map((d) => ({ ...onDevice(base, d), id: `${s.id}[${d.name}]`, parent: s.id }))
        : mode === 'validate' || !matching
          ? []
          : matching.filter((a) => !a.draining).map((a) => ({ ...base, id: `${s.id}[${a.name}]`, parent: s.id, agent: a.name }));
    const maxFailures = s.target?.maxFailures;
    groups.push({
      id: s.id,
      over: items ? 'items' : overDevices ? 'devices' : 'agents',
      instances: instances.map((i) => i.id),
      maxParallel: s.target?.maxParallel ?? 0,
      maxFailures: typeof maxFailures === 'string' ? Math.floor((instances.length * parseInt(maxFailures, 10)) / 100) : (maxFailures ?? 0),
      needs,
      continueOnError: s.continueOnError ?? false,
      isFinally,
    });
    steps.push(...instances);
  });

  // Secret params never enter the plan: they reach the agents that need them with their steps.
  const params = Object.fromEntries(Object.entries(typed).map(([k, v]) => [k, secretParams.has(k) ? SECRET_SHOWN : typeof v === 'string' ? v : JSON.stringify(v)]));
  const paramsJson = JSON.stringify(Object.fromEntries(Object.entries(typed).filter(([k]) => !secretParams.has(k))));
  const deadlineMs = parseDuration(wf.deadline) ?? 0;
  const concurrency = wf.concurrency ?? 'allow';
  const onAgentLost = wf.onAgentLost ?? 'fail';
  // Placement of single steps (chosen by load at submit) is not part of the plan's identity.
  const identity = { workflow: wf.name, params, deadlineMs, concurrency, onAgentLost, groups, steps: steps.map((st) => ({ ...st, agent: st.parent && st.target.strategy === 'all' ? st.agent : '' })) };
  const hash = createHash('sha256').update(canonicalJson(identity)).digest('hex');
  return { workflow: wf.name, hash, params, paramsJson, deadlineMs, concurrency, onAgentLost, steps, groups };
}

function unitPlan(wf: WorkflowDoc, s: StepDoc, target: TargetPlan, needs: string[], isFinally: boolean, secretParams: Set<string>): StepPlan {
  const env: Record<string, string> = {};
  for (const n of s.secrets ?? []) env[n] = `\${{ secrets.${n} }}`;
  for (const [k, v] of Object.entries({ ...wf.env, ...s.env })) env[k] = canonicalizeTemplates(String(v));
  const script = typeof s.script === 'string' ? { interpreter: '/bin/sh', body: s.script } : (s.script ?? null);
  const expect = s.http?.expect;
  const plan: StepPlan = {
    id: s.id,
    parent: '',
    itemJson: '',
    kind: kindOf(s),
    needs,
    run: s.run ?? '',
    command: (s.command ?? []).map(canonicalizeTemplates),
    script,
    http: s.http
      ? {
          method: s.http.method,
          url: canonicalizeTemplates(s.http.url),
          headers: Object.fromEntries(Object.entries(s.http.headers ?? {}).map(([k, v]) => [k, canonicalizeTemplates(v)])),
          body: canonicalizeTemplates(s.http.body ?? ''),
          expectStatus: expect === undefined ? [] : Array.isArray(expect) ? expect : [expect],
        }
      : null,
    file: s.file
      ? {
          path: canonicalizeTemplates(s.file.path),
          content: canonicalizeTemplates(s.file.content),
          // YAML reads an unquoted 644 (or 0644) as the number 644: its digits are the octal mode.
          mode: s.file.mode === undefined ? '' : String(s.file.mode),
          owner: s.file.owner ?? '',
        }
      : null,
    sleepMs: s.sleep === undefined ? 0 : (parseDuration(s.sleep) ?? 0),
    ssh: s.ssh ? sshPlan(s.ssh) : null,
    env,
    target,
    agent: target.agent,
    timeoutMs: parseDuration(s.timeout) ?? 0,
    retry: {
      attempts: s.retry?.attempts ?? 1,
      backoff: s.retry?.backoff ?? 'fixed',
      initialMs: parseDuration(s.retry?.initial) ?? 1000,
      maxMs: parseDuration(s.retry?.max) ?? 60_000,
      jitter: s.retry?.jitter ?? 0,
      retryOn: s.retry?.retryOn ?? [],
    },
    when: s.when ? canonicalize(unwrap(s.when)) : '',
    continueOnError: s.continueOnError ?? false,
    isFinally,
    secrets: [],
    secretParams: [],
  };
  return withSecretRefs(plan, secretParams);
}

/** What a param declared secret shows as in the plan, the run and every listing. */
export const SECRET_SHOWN = '(secret)';

/** Fills a step's `secrets` and `secretParams` from the expressions of its fields. */
function withSecretRefs(plan: StepPlan, secretParams: Set<string>): StepPlan {
  const texts = [
    ...Object.values(plan.env),
    ...plan.command,
    ...(plan.http ? [plan.http.url, plan.http.body, ...Object.values(plan.http.headers)] : []),
    ...(plan.file ? [plan.file.path, plan.file.content] : []),
    ...(plan.ssh ? [plan.ssh.host, ...plan.ssh.commands.map((c) => c.command)] : []),
  ];
  const secrets = new Set<string>();
  const params = new Set<string>();
  const add = (expr: string) => {
    const refs = secretRefs(expr);
    refs.secrets.forEach((n) => secrets.add(n));
    refs.params.filter((n) => secretParams.has(n)).forEach((n) => params.add(n));
  };
  for (const t of texts) for (const m of t.matchAll(TEMPLATE)) add(m[1]);
  if (plan.when) add(plan.when);
  return { ...plan, secrets: [...secrets].sort(), secretParams: [...params].sort() };
}

/** An ssh step's plan as written; a registered device's connection is filled in by onDevice. */
function sshPlan(ssh: NonNullable<StepDoc['ssh']>): SshPlan {
  return {
    device: '',
    host: canonicalizeTemplates(ssh.host ?? ''),
    port: ssh.port ?? 22,
    user: ssh.user ?? '',
    credential: ssh.credential ?? '',
    network: ssh.network ?? DEFAULT_NETWORK,
    commands: ssh.commands.map((c) =>
      typeof c === 'string'
        ? { command: canonicalizeTemplates(c), name: '', timeoutMs: 0 }
        : { command: canonicalizeTemplates(c.command), name: c.name ?? '', timeoutMs: parseDuration(c.timeout) ?? 0 },
    ),
    errorPattern: ssh.errorPattern ?? DEFAULT_ERROR_PATTERN,
    mode: ssh.mode ?? 'shell',
    prompt: ssh.prompt || DEFAULT_PROMPT,
    commandTimeoutMs: parseDuration(ssh.commandTimeout) ?? DEFAULT_COMMAND_TIMEOUT_MS,
    maxSessions: 1,
  };
}

/** Evaluates a forEach expression over the params; it must give a list. */
function forEachItems(expr: string, typed: Record<string, unknown>, path: PathSegment[], problems: Problems, mode: 'run' | 'validate'): unknown[] {
  if (mode === 'validate') return [];
  let v: unknown;
  try {
    v = evaluate(unwrap(expr), { params: celParams(typed) });
  } catch (err) {
    problems.add(path, `cannot evaluate forEach "${unwrap(expr)}": ${(err as Error).message.split('\n')[0]}`);
    return [];
  }
  if (!Array.isArray(v)) {
    problems.add(path, `forEach "${unwrap(expr)}" must give a list, got ${typeof v === 'bigint' ? 'a number' : typeof v}`);
    return [];
  }
  return v.map((x) => (typeof x === 'bigint' ? Number(x) : x));
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
