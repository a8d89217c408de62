/** WorkflowService: validate documents, preview plans, and the versioned registry. */
import type { PlanPreview } from '../../proto/gen/drover/v1/PlanPreview.js';
import type { PreviewStep } from '../../proto/gen/drover/v1/PreviewStep.js';
import type { WorkflowInfo, WorkflowServiceHandlers } from '../../proto/index.js';
import { compile } from '../compiler/compile.js';
import type { Devices } from '../devices.js';
import type { Fleet } from '../fleet.js';
import { describeTarget, matches, proxiesFor } from '../model/target.js';
import type { Compiled, Runs } from '../runs.js';
import type { WorkflowVersion } from '../store/store.js';
import type { Workflows } from '../workflows.js';
import { unary } from './grpc-errors.js';

export function workflowService(runs: Runs, workflows: Workflows, fleet: Fleet, devices?: Devices): WorkflowServiceHandlers {
  const info = (v: WorkflowVersion, extra: Partial<WorkflowInfo> = {}): WorkflowInfo => ({
    name: v.name,
    version: v.version,
    hash: v.hash,
    createdMs: v.createdMs,
    description: v.description,
    versions: workflows.count(v.name),
    ...extra,
  });
  return {
    ValidateWorkflow: unary((req) => {
      const res = compile({ source: req.source, params: {}, fleet: fleet.snapshot(), devices: devices?.list(), mode: 'validate' });
      return { workflow: res.workflow, problems: res.problems, valid: !res.problems.some((p) => p.severity === 'error') };
    }),
    PlanRun: unary((req) => preview(runs.compile({ source: req.source, filename: req.filename, params: req.params, workflowRef: req.workflowRef }), fleet)),
    ApplyWorkflow: unary(async (req) => {
      const { version, changed } = await workflows.apply(req.source, req.filename);
      return info(version, { changed });
    }),
    ListWorkflows: unary(() => ({ workflows: workflows.list().map(({ latest }) => info(latest)) })),
    GetWorkflow: unary((req) => {
      const v = workflows.get(req.name, req.version);
      return info(v, { source: v.source });
    }),
  };
}

/** Waves of declared steps (a fan-out counts once), with matching agents and placement now. */
export function preview(c: Compiled, fleet: Fleet): PlanPreview {
  const { plan, placement, version, problems } = c;
  const agents = fleet.snapshot();
  const entries = [
    ...plan.steps.filter((s) => !s.parent).map((s) => ({ id: s.id, needs: s.needs, unit: s, group: undefined })),
    ...plan.groups.map((g) => ({ id: g.id, needs: g.needs, unit: plan.steps.find((s) => s.parent === g.id), group: g })),
  ];
  const level = new Map<string, number>();
  const levelOf = (id: string): number => {
    const known = level.get(id);
    if (known !== undefined) return known;
    const e = entries.find((x) => x.id === id);
    const l = e && e.needs.length ? 1 + Math.max(...e.needs.map(levelOf)) : 0;
    level.set(id, l);
    return l;
  };
  const waves: { index: number; steps: PreviewStep[] }[] = [];
  const declaredOrder = new Map(plan.steps.map((s, i) => [s.parent || s.id, i]));
  for (const e of [...entries].sort((a, b) => (declaredOrder.get(a.id) ?? 0) - (declaredOrder.get(b.id) ?? 0))) {
    const l = levelOf(e.id);
    while (waves.length <= l) waves.push({ index: waves.length, steps: [] });
    const target = e.unit?.target;
    waves[l].steps.push({
      id: e.id,
      kind: e.unit?.kind ?? '',
      needs: e.group?.isFinally || e.unit?.isFinally ? [] : e.needs,
      target: !target ? '' : e.unit?.ssh && e.group ? `devices ${describeTarget({ ...target, device: '' })}` : describeTarget(target),
      strategy: target?.strategy ?? 'one',
      // ssh steps: the proxy agents for the device's network.
      matches: target
        ? agents.filter((a) => (e.unit?.ssh ? proxiesFor(a, e.unit.ssh.network) : matches(a, target))).map((a) => ({ name: a.name, state: `AGENT_STATE_${a.state.toUpperCase()}` as 'AGENT_STATE_CONNECTED', draining: a.draining }))
        : [],
      instances: e.group?.instances ?? [],
      agent: e.group ? '' : (placement.agents[e.id] ?? ''),
      when: e.unit?.when ?? '',
      isFinally: e.group?.isFinally ?? e.unit?.isFinally ?? false,
      maxParallel: e.group?.maxParallel ?? 0,
      maxFailures: e.group?.maxFailures ?? 0,
    });
  }
  return {
    workflow: plan.workflow,
    version,
    hash: plan.hash,
    waves,
    problems: [...problems, ...placement.problems],
    params: plan.params,
  };
}
