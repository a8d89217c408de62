/**
 * The approval panel of a run page: each open approval step's question,
 * who may decide and until when, and — for a token among its approvers —
 * Approve and Reject with a reason. Decisions (also those given from the
 * CLI or the SDK) show live: the step arrives on the run's feed.
 */
import { useState } from 'preact/hooks';
import { useApp } from './context.js';
import { clock } from './format.js';
import type { Role, StepInfo } from './messages.js';

const ROLE_RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** Whether a token may decide: a role entry admits that role and above, another entry that token's name or id (as control-plane/approvals.ts decides). */
export function mayDecide(approvers: readonly string[], role: Role | null, tokenName: string, tokenId: string): boolean {
  return approvers.some((a) => (a in ROLE_RANK ? role !== null && ROLE_RANK[role] >= ROLE_RANK[a as Role] : (!!tokenName && a === tokenName) || a === tokenId));
}

/** "operator (and above) or alice". */
function who(approvers: readonly string[]): string {
  const names = approvers.map((a) => (a in ROLE_RANK && a !== 'admin' ? `${a} (and above)` : a));
  return names.length <= 1 ? (names[0] ?? 'nobody') : `${names.slice(0, -1).join(', ')} or ${names.at(-1)}`;
}

function Gate({ runId, s, now }: { runId: string; s: StepInfo; now: number }) {
  const { state, feed } = useApp();
  const [reason, setReason] = useState('');
  const a = s.approval!;
  const open = s.status === 'STEP_STATUS_RUNNING' && !a.decision;
  const allowed = mayDecide(a.approvers, state.role, state.tokenName, state.tokenId);
  const send = (approve: boolean) => feed.request({ type: 'decide', run: runId, step: s.id, approve, reason: reason.trim() });
  return (
    <div class={`approval${open ? ' open' : ''}`} data-testid="approval" data-step={s.id} data-decision={a.decision || (open ? 'open' : 'none')}>
      <div class="approval-head">
        <span class="strong mono">{s.id}</span>
        {open ? (
          <span class="muted">
            waiting for {who(a.approvers)}
            {a.deadlineMs ? ` · times out ${clock(a.deadlineMs, now)} (onTimeout: ${a.onTimeout})` : ''}
          </span>
        ) : (
          <span class="muted" data-testid="approval-decision">
            {a.decision === 'timed-out' ? `timed out (onTimeout: ${a.onTimeout})` : a.decision ? `${a.decision} by ${a.decidedBy}${a.reason ? `: ${a.reason}` : ''}` : s.message || 'not open yet'}
          </span>
        )}
      </div>
      {a.message && <p class="approval-message" data-testid="approval-message">{a.message}</p>}
      {open && allowed && (
        <div class="approval-actions">
          <input type="text" placeholder="reason (optional)" maxLength={1000} value={reason} data-testid="approval-reason" onInput={(e) => setReason((e.target as HTMLInputElement).value)} />
          <button class="primary" data-testid="approve" onClick={() => send(true)}>
            Approve
          </button>
          <button class="danger" data-testid="reject" onClick={() => send(false)}>
            Reject
          </button>
        </div>
      )}
      {open && !allowed && <p class="muted" data-testid="approval-not-yours">Your token is not among its approvers.</p>}
    </div>
  );
}

/** Every approval step of the run that has opened or was decided; nothing for a run without gates. */
export function ApprovalPanel({ runId, steps, now }: { runId: string; steps: StepInfo[]; now: number }) {
  const gates = steps.filter((s) => s.approval && (s.status !== 'STEP_STATUS_PENDING' || s.approval.decision));
  if (!gates.length) return null;
  return (
    <div class="approvals" data-testid="approvals">
      {gates.map((s) => (
        <Gate key={s.id} runId={runId} s={s} now={now} />
      ))}
    </div>
  );
}
