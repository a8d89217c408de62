/**
 * Runs.rerun: a new run of a finished run's stored plan (the same workflow
 * version, params and hash; trigger "rerun", rerunOf the old id), reusing
 * what the mode allows (scheduler/rerun.ts). It checks the request, places
 * the steps that run again against the fleet now (fan-out instances keep
 * their agents), applies the workflow's concurrency, and starts the run the
 * way a submit does: durable first. Runs.rerun puts an idempotency key in
 * front of it (launch-keys.ts), scoped like a launch's.
 */
import type { Problem } from '../common/errors.js';
import { didYouMean } from '../common/workflow/compiler/suggest.js';
import { ApiError, NotFoundError } from './errors.js';
import { TERMINAL_RUN, type RunRecord } from './model/run.js';
import type { FleetAgent } from '../common/workflow/model/target.js';
import { admission, deviceAffinity, type RunsState } from './scheduler/run-machine.js';
import { place } from '../common/workflow/placement/placement.js';
import { rerunRecord, reusedSteps, type RerunMode } from './scheduler/rerun.js';

export interface RerunOptions {
  /** Run this step (a declared step, a fan-out or forEach group, or one instance) and what depends on it again; reuse what succeeded before it. */
  fromStep?: string;
  /** Run again only what did not succeed (and what depends on it); reuse every step and instance that succeeded. */
  failedOnly?: boolean;
  /** A repeat with the same key (for the same workflow) starts nothing and answers the run the first one started. */
  idempotencyKey?: string;
}

/** How a re-run request reads in its record and its idempotency key's hash: "all", "from:STEP" or "failed-only". */
export function rerunModeText(opts: RerunOptions): string {
  return opts.failedOnly ? 'failed-only' : opts.fromStep ? `from:${opts.fromStep}` : 'all';
}

export interface Rerun {
  run: RunRecord;
  /** No run was started: `run` is the one the same idempotency key started before. */
  deduplicated: boolean;
}

/** What Runs lends the re-run: its lookups, its machine state and its durable start. */
export interface RerunHost {
  get(id: string): RunRecord;
  readonly state: RunsState;
  fleet(): FleetAgent[];
  newId(): string;
  now(): number;
  /** Writes the run, then lets the machine start or queue it (the second half of a submit). */
  start(run: RunRecord): Promise<RunRecord>;
}

export async function rerun(host: RerunHost, id: string, opts: RerunOptions): Promise<Rerun> {
  const old = host.get(id);
  const mode = modeOf(old, opts);
  if (!TERMINAL_RUN.has(old.status)) {
    throw new ApiError('RUN_NOT_FINISHED', `run ${old.id} is still ${old.status}; only a finished run can be re-run`, `wait for it (drover status ${old.id} --watch) or cancel it (drover cancel ${old.id})`);
  }
  const reused = reusedSteps(old, mode);
  const toRun = old.plan.steps.filter((s) => !reused.has(s.id));
  if (mode.kind === 'failed' && toRun.every((s) => s.isFinally)) {
    throw new ApiError('NOT_RERUNNABLE', `run ${old.id} ${old.status} with no step that failed, so --failed-only has nothing to run again`, `re-run all of it (drover rerun ${old.id}) or from a step (drover rerun ${old.id} --from STEP)`);
  }
  const secret = toRun.find((s) => s.secretParams.length > 0);
  if (secret) {
    throw new ApiError(
      'NOT_RERUNNABLE',
      `step ${secret.id} of run ${old.id} uses the secret param${secret.secretParams.length === 1 ? '' : 's'} ${secret.secretParams.join(', ')}, whose value${secret.secretParams.length === 1 ? ' is' : 's are'} not kept after a run ends`,
      `launch the workflow anew with -p (or --param-file) ${secret.secretParams[0]}=...${mode.kind === 'all' ? ', or re-run from a step after it with --from' : ''}`,
    );
  }
  const fleet = host.fleet();
  const placement = place(toRun, fleet, deviceAffinity(host.state));
  const blockers = [...placement.problems, ...boundAgentProblems(toRun, fleet)];
  if (blockers.length) {
    throw new ApiError(
      'NO_MATCHING_AGENT',
      blockers.map((p) => `${p.path}: ${p.message}`).join('; '),
      "start an agent with matching --label flags (or undrain one), or launch the workflow anew to fan out over the agents there now; nothing was started",
      blockers,
    );
  }
  const admit = admission(host.state, old.plan);
  if (admit.decision === 'skip') {
    const active = admit.blocker;
    throw new ApiError(
      'RUN_SKIPPED',
      `run ${active.id} of ${old.workflow} is still ${active.status} and the workflow has concurrency: skip; no new run was started`,
      `wait for it (drover status ${active.id}) or cancel it (drover cancel ${active.id})`,
    );
  }
  const run = rerunRecord(host.newId(), old, reused, placement, admit.decision === 'queue', host.now());
  run.rerunMode = rerunModeText(opts);
  if (opts.idempotencyKey) run.idempotencyKey = opts.idempotencyKey;
  return { run: await host.start(run), deduplicated: false };
}

/** The mode a request asks for; throws on an unknown step or on both modes at once. */
function modeOf(old: RunRecord, opts: RerunOptions): RerunMode {
  if (opts.fromStep && opts.failedOnly) {
    throw new ApiError('INVALID_INPUT', '--from and --failed-only do not go together: --failed-only already reuses every step that succeeded', 'give one of them');
  }
  if (opts.failedOnly) return { kind: 'failed' };
  if (!opts.fromStep) return { kind: 'all' };
  if (!old.steps[opts.fromStep]) {
    const ids = Object.keys(old.steps);
    const declared = ids.filter((s) => !old.steps[s].parent);
    throw new NotFoundError('STEP_NOT_FOUND', `run ${old.id} has no step "${opts.fromStep}"${didYouMean(opts.fromStep, ids)}`, `its steps: ${declared.join(', ') || 'none'}`);
  }
  return { kind: 'from', step: opts.fromStep };
}

/** Fan-out instances that run again on the agent they were expanded for: that agent must still be there and usable. */
function boundAgentProblems(steps: RunRecord['plan']['steps'], fleet: FleetAgent[]): Problem[] {
  const problems: Problem[] = [];
  for (const s of steps) {
    if (!(s.agent && s.parent && s.target.strategy === 'all')) continue;
    const a = fleet.find((f) => f.name === s.agent);
    const why = !a ? 'is no longer in the fleet' : a.draining ? 'is draining' : a.state === 'lost' ? 'is lost' : '';
    if (why) problems.push({ path: `step "${s.id}"`, line: 0, column: 0, severity: 'error', message: `agent ${s.agent}, which this fan-out instance runs on, ${why}` });
  }
  return problems;
}
