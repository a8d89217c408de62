/**
 * compile(source, params, fleet) -> plan. Pure and deterministic: the same
 * document, params and fleet always give the same plan and hash. Every
 * problem found is reported at once, each with its path and (for YAML) line
 * and column. Checks run on the raw document as far as its shape allows, so
 * a type error in one field does not hide a cycle in another.
 *
 * One file per job, in the order they run: source (parse), schema-issues,
 * graph, params, step-checks (with expression-checks and ssh-rules), secrets;
 * then devices, targets and build-plan (with step-plan) make the plan and its
 * hash. The control plane and the CLI (offline, `drover validate` and `drover
 * plan --fleet`) run this same code.
 */
import type { Problem } from '../../errors.js';
import type { RunPlan, TriggerPlan } from '../model/plan.js';
import type { FleetAgent, FleetDevice } from '../model/target.js';
import { buildPlan } from './build-plan.js';
import { checkDeviceRefs } from './devices.js';
import { paramTypes } from './expression-checks.js';
import { checkGraph } from './graph.js';
import { bindParams } from './params.js';
import { Problems } from './problems.js';
import { isObject, rawSteps } from './raw.js';
import { workflowSchema, type ParamDoc } from './schema.js';
import { reportSchemaIssues } from './schema-issues.js';
import { checkSecrets } from './secrets.js';
import { parseSource } from './source.js';
import { checkSteps } from './step-checks.js';
import { checkTargets } from './targets.js';
import { checkTriggers, compileTriggers } from './triggers.js';

export interface CompileInput {
  source: string;
  params: Record<string, string>;
  /** The fleet now: fan-outs expand over it, and targets nothing matches are warned about (in both modes). */
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
  /** Its triggers, compiled, when there is no error (they act once it is registered). */
  triggers?: TriggerPlan[];
  /** Errors and warnings; a plan exists only when there is no error. */
  problems: Problem[];
  /** Values of params declared `secret: true`, kept out of the plan (the run seals them). */
  secretParams?: Record<string, string>;
  /** True when there are errors and every one is about the given params, not the document (INVALID_PARAMS). */
  invalidParams?: boolean;
}

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

  // reportInput: the value an issue is about, for its message (a did-you-mean for an enum).
  const parsed = workflowSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) reportSchemaIssues(parsed.error.issues, problems);
  const steps = rawSteps(raw);
  checkGraph(steps, problems);
  const decl = isObject(raw.params) ? (raw.params as Record<string, ParamDoc>) : {};
  const typed = bindParams(decl, input.params, problems, mode);
  const secretNames = new Set(Object.entries(decl).filter(([, p]) => isObject(p) && p.secret === true).map(([n]) => n));
  checkSteps(raw, steps, paramTypes(decl, typed), problems);
  checkSecrets(raw, steps, secretNames, mode === 'run' ? input.secrets : undefined, problems);
  checkTriggers(raw, Object.keys(decl), problems);
  if (!parsed.success || problems.hasErrors) return { workflow, problems: problems.list, invalidParams: parsed.success && problems.onlyParamValueErrors };
  if (mode === 'validate') {
    if (input.fleet) checkTargets(parsed.data, input.fleet, problems);
    if (input.devices) checkDeviceRefs(parsed.data, input.devices, input.fleet, problems);
    return { workflow, description: parsed.data.description, problems: problems.list, triggers: compileTriggers(workflow, parsed.data.triggers) };
  }

  const secretParams: Record<string, string> = {};
  for (const n of secretNames) if (typeof typed[n] === 'string') secretParams[n] = typed[n] as string;
  const plan = buildPlan(parsed.data, typed, secretNames, input.fleet, input.devices ?? [], mode, problems);
  if (problems.hasErrors) return { workflow, problems: problems.list };
  return { workflow, description: parsed.data.description, plan, problems: problems.list, secretParams, triggers: compileTriggers(workflow, parsed.data.triggers) };
}
