/**
 * Who may decide an approval gate, and whether it can be decided now: the
 * checks DecideApproval (and the dashboard's feed) make before the run
 * machine hears of a decision (scheduler/approvals.ts). An approver entry
 * that is a role admits that role and above; any other entry admits the API
 * token of that name (`drover token create --name alice`) or that id.
 */
import { ApiError, NotFoundError } from './errors.js';
import { planIndex } from './model/plan-index.js';
import { TERMINAL_RUN, type RunRecord, type StepRecord } from './model/run.js';
import { approversText, clockTime } from './scheduler/approvals.js';
import { roleAllows, ROLES, type Tokens } from './security/tokens.js';
import type { Role, TokenRecord } from './store/store.js';

/** The caller of a decision, from its authenticated token (never from a field it sends). */
export interface Approver {
  tokenId: string;
  /** The token's name; '' for a token without one. */
  name: string;
  role: Role;
}

/** Longest reason kept with a decision. */
export const MAX_REASON_CHARS = 1000;

/** The approver an API token is (throws TokenError for one that is not valid). */
export function approverOf(tokens: Tokens, token: string): Approver {
  return approverOfRecord(tokens.check(token, 'api'));
}

/** The approver a checked token record is. */
export function approverOfRecord(rec: TokenRecord): Approver {
  return { tokenId: rec.id, name: rec.name ?? '', role: rec.role as Role };
}

/** How the run's history names an approver: its token's name, else its id. */
export function approverName(a: Approver): string {
  return a.name || a.tokenId;
}

/** Whether `a` is among `approvers`. */
export function mayDecide(approvers: readonly string[], a: Approver): boolean {
  return approvers.some((entry) => ((ROLES as readonly string[]).includes(entry) ? roleAllows(a.role, entry as Role) : entry === a.name || entry === a.tokenId));
}

/**
 * The gate `stepId` of `run` as `a` may decide it now; otherwise throws:
 * STEP_NOT_FOUND, INVALID_INPUT (not an approval step, a reason too long),
 * PERMISSION_DENIED (not an approver: names who may), RUN_FINISHED,
 * APPROVAL_NOT_OPEN (waiting for its needs, skipped, cancelled),
 * APPROVAL_DECIDED (decided or timed out: how, by whom, when).
 */
export function checkDecision(run: RunRecord, stepId: string, a: Approver, reason: string, now: number): StepRecord {
  const step = run.steps[stepId];
  const plan = planIndex(run.plan).step(stepId);
  if (!step || !plan) {
    const gates = run.plan.steps.filter((s) => s.kind === 'approval').map((s) => s.id);
    throw new NotFoundError('STEP_NOT_FOUND', `run ${run.id} has no step "${stepId}"`, gates.length ? `its approval steps: ${gates.join(', ')}` : 'it has no approval steps');
  }
  if (plan.kind !== 'approval' || !plan.approval) {
    const gates = run.plan.steps.filter((s) => s.kind === 'approval').map((s) => s.id);
    throw new ApiError('INVALID_INPUT', `step ${stepId} of run ${run.id} is a ${plan.kind} step, not an approval step`, gates.length ? `its approval steps: ${gates.join(', ')}` : 'this run has no approval steps');
  }
  if (reason.length > MAX_REASON_CHARS) throw new ApiError('INVALID_INPUT', `the reason is ${reason.length} characters; at most ${MAX_REASON_CHARS} are kept`, 'shorten --reason');
  const { approvers } = plan.approval;
  if (!mayDecide(approvers, a)) {
    const roles = approvers.filter((e) => (ROLES as readonly string[]).includes(e)).map((r) => (r === 'admin' ? 'admin' : `${r} (and above)`));
    const names = approvers.filter((e) => !(ROLES as readonly string[]).includes(e));
    const who = approversText([...roles, ...names.map((n) => `token ${n}`)]);
    throw new ApiError(
      'PERMISSION_DENIED',
      `only ${who} may decide step ${stepId} of run ${run.id}; token ${approverName(a)} (${a.role}) is not among its approvers`,
      'ask one of them, or use their token (drover whoami shows yours)',
    );
  }
  const rec = step.approval;
  if (rec?.decision) {
    const how = rec.decision === 'timed-out' ? `timed out at ${clockTime(rec.decidedMs, now)} and ${step.status}` : `${rec.decision} by ${rec.decidedBy} at ${clockTime(rec.decidedMs, now)}${rec.reason ? ` (${rec.reason})` : ''}`;
    throw new ApiError('APPROVAL_DECIDED', `step ${stepId} of run ${run.id} was already ${how}`, `see drover status ${run.id}`);
  }
  if (TERMINAL_RUN.has(run.status)) throw new ApiError('RUN_FINISHED', `run ${run.id} already ${run.status}; there is nothing to decide`, `see drover status ${run.id}`);
  if (step.status === 'pending') {
    const needs = plan.needs.filter((n) => run.steps[n] && !['succeeded', 'failed', 'skipped', 'cancelled'].includes(run.steps[n].status));
    throw new ApiError(
      'APPROVAL_NOT_OPEN',
      `step ${stepId} of run ${run.id} is not open yet: ${run.status === 'pending' ? 'the run is queued' : `it waits for ${needs.join(', ') || 'its needs'}`}`,
      'decide once it opens: drover status shows "waiting for approval"',
    );
  }
  if (step.status !== 'running') {
    throw new ApiError('APPROVAL_NOT_OPEN', `step ${stepId} of run ${run.id} was ${step.status}${step.message ? ` (${step.message})` : ''}; there is nothing to decide`, `see drover status ${run.id}`);
  }
  return step;
}

export { approversText };
