/**
 * The plan of a valid document: each declared step as a unit, or a group of
 * instances (fan-out over agents or devices, forEach over items), and the
 * content hash of what the plan does.
 */
import { createHash } from 'node:crypto';
import { evaluate } from '@marcbachmann/cel-js';
import { parseDuration } from '../../duration.js';
import type { GroupPlan, RunPlan, StepPlan } from '../model/plan.js';
import type { FleetAgent, FleetDevice } from '../model/target.js';
import { onDevice, selectDevices, warnNoProxy } from './devices.js';
import { unwrap } from './expressions.js';
import { celParams } from './params.js';
import type { Problems } from './problems.js';
import type { WorkflowDoc } from './schema.js';
import { SECRET_SHOWN } from './secrets.js';
import type { PathSegment } from './source.js';
import { targetPlan, unitPlan } from './step-plan.js';
import { matchingAgents } from './targets.js';

/** The run plan; problems found on the way (no match, no device, a bad forEach) go to `problems`. */
export function buildPlan(
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
    // Gates run on no agent; ssh steps select devices.
    const matching = matchingAgents(s, target, fleet, path, problems);
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
