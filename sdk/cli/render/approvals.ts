/**
 * The Approvals section of `drover status`: each approval step's gate, who
 * may decide it, its question and deadline while it waits, and the decision
 * once there is one (with who and why).
 */
import type { Approval, Run, Step } from '../../types.js';

const ROLES = ['viewer', 'operator', 'admin'];

/** "operator (and above) or alice". */
export function approversText(approvers: readonly string[]): string {
  const names = approvers.map((a) => (ROLES.includes(a) && a !== 'admin' ? `${a} (and above)` : a));
  return names.length <= 1 ? (names[0] ?? 'nobody') : `${names.slice(0, -1).join(', ')} or ${names.at(-1)}`;
}

/** "2026-12-02 14:02 UTC". */
function utc(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

function gateLines(run: Run, step: Step, a: Approval): string[] {
  const out: string[] = [];
  const timeout = a.deadline ? `times out ${utc(a.deadline)} (onTimeout: ${a.onTimeout})` : 'no timeout';
  if (a.decision === 'approved' || a.decision === 'rejected') {
    out.push(`${a.decision} by ${a.decidedBy} at ${utc(a.decidedAt)}${a.reason ? `: ${a.reason}` : ''}`);
  } else if (a.decision === 'timed-out') {
    out.push(`timed out at ${utc(a.decidedAt)} with no decision: ${a.onTimeout === 'approve' ? 'approved (onTimeout: approve)' : 'failed (onTimeout: fail)'}`);
  } else if (step.status === 'running') {
    out.push(`waiting for ${approversText(a.approvers)}; ${timeout}`);
  } else if (step.status === 'pending') {
    out.push(`opens once its needs are done; then ${approversText(a.approvers)} may decide`);
  } else {
    out.push(`${step.status}${step.message ? `: ${step.message}` : ''}`);
  }
  if (a.message) out.push(`asks: ${a.message}`);
  if (step.status === 'running' && !a.decision) out.push(`decide: drover approve ${run.id} ${step.id} [--reject] [--reason TEXT]`);
  return out;
}

/** The section's lines ('' for a run without approval steps). */
export function approvalLines(run: Run): string {
  let out = '';
  for (const s of run.steps) {
    if (!s.approval) continue;
    const [first, ...rest] = gateLines(run, s, s.approval);
    out += `  ${s.id}: ${first}\n${rest.map((l) => `    ${l}\n`).join('')}`;
  }
  return out;
}
