/** WorkflowService: validate documents, preview plans, and the versioned registry. */
import type { PlanPreview } from '../../proto/gen/drover/v1/PlanPreview.js';
import type { WorkflowInfo, WorkflowServiceHandlers } from '../../proto/index.js';
import { compile } from '../../common/workflow/compiler/compile.js';
import type { Devices } from '../devices.js';
import type { Fleet } from '../fleet.js';
import type { Compiled, Runs } from '../runs.js';
import { previewWaves } from '../../common/workflow/placement/preview.js';
import type { WorkflowVersion } from '../store/store.js';
import type { Workflows } from '../workflows.js';
import { toAgentState } from './convert.js';
import { unary } from './grpc-errors.js';

/**
 * `triggerWarnings`: what a registered workflow's triggers need that this
 * control plane lacks, told to whoever applies it (triggers/warnings.ts).
 */
export function workflowService(runs: Runs, workflows: Workflows, fleet: Fleet, devices?: Devices, triggerWarnings?: (workflow: string) => string[]): WorkflowServiceHandlers {
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
    // The compiler's checks and those that need this control plane: targets no agent matches, the device inventory, trigger names other registered workflows use, the registered versions.
    ValidateWorkflow: unary((req) => {
      const res = compile({ source: req.source, params: {}, fleet: fleet.snapshot(), devices: devices?.list(), mode: 'validate' });
      const problems = res.triggers ? [...res.problems, ...workflows.triggerClashes(res.workflow, res.triggers)] : res.problems;
      const registered = res.workflow ? workflows.registered(res.workflow, req.source) : { latest: 0, sameAs: 0 };
      return { workflow: res.workflow, problems, valid: !problems.some((p) => p.severity === 'error'), registeredVersion: registered.latest, sameAsVersion: registered.sameAs };
    }),
    PlanRun: unary((req) => planPreview(runs.compile({ source: req.source, filename: req.filename, params: req.params, workflowRef: req.workflowRef }), fleet)),
    ApplyWorkflow: unary(async (req) => {
      const { version, changed } = await workflows.apply(req.source, req.filename);
      return info(version, { changed, warnings: triggerWarnings?.(version.name) ?? [] });
    }),
    ListWorkflows: unary(() => ({ workflows: workflows.list().map(({ latest }) => info(latest)) })),
    GetWorkflow: unary((req) => {
      const v = workflows.get(req.name, req.version);
      return info(v, { source: v.source });
    }),
  };
}

/** The wire form of a plan preview: the waves now (see common/workflow/placement/preview.ts) and every problem. */
function planPreview({ plan, placement, version, problems, blockers }: Compiled, fleet: Fleet): PlanPreview {
  const waves = previewWaves(plan, placement, fleet.snapshot()).map((w) => ({
    ...w,
    steps: w.steps.map((s) => ({ ...s, matches: s.matches.map((m) => ({ ...m, state: toAgentState(m.state) })) })),
  }));
  return { workflow: plan.workflow, version, hash: plan.hash, waves, problems: [...problems, ...blockers], params: plan.params };
}
