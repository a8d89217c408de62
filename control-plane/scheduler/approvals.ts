/**
 * Approval gates in the run machine. A gate is a step of kind `approval`
 * that runs on no agent: once its needs are resolved the control plane
 * resolves it as an agent resolves its own steps (cancelled in a cancelled
 * run, skipped after a need that failed or a `when` that is false) or opens
 * it: status running, its message rendered from params and its needs'
 * outputs, its deadline fixed (StepRecord.approval, persisted). It closes on
 * a decision (approve: succeeded, with outputs approved/decidedBy/reason;
 * reject: failed), on its timeout (onTimeout), or when the run is cancelled.
 * Dependents on agents hear of it through the ordinary release path.
 *
 * The deadline is stored, never recomputed: a control plane that restarts
 * re-arms the same one (resumeGates), and a deadline that passed while it
 * was down fires at once. Pure, like the rest of the machine: the clock is
 * `d.now`, timers are effects.
 */
import { evaluate } from '@marcbachmann/cel-js';
import { celValue, TEMPLATE } from '../../common/template.js';
import { planIndex } from '../model/plan-index.js';
import type { ApprovalPlan, StepPlan } from '../../common/workflow/model/plan.js';
import { TERMINAL_STEP, type ApprovalRecord, type RunRecord, type StepRecord } from '../model/run.js';
import type { Decisions } from './decisions.js';

/**
 * The longest a timer is set for (setTimeout's limit is 2^31-1 ms, about 24.8
 * days): a later deadline is re-armed when this one fires.
 */
export const MAX_TIMER_MS = 2_147_000_000;

/** A decision as the API hands it in (the caller already checked as an approver). */
export interface Decision {
  runId: string;
  stepId: string;
  approve: boolean;
  /** The approver's name as the run's history shows it. */
  by: string;
  reason: string;
}

const isGate = (p: StepPlan | undefined): p is StepPlan & { approval: ApprovalPlan } => p?.kind === 'approval';
const open = (s: StepRecord) => s.kind === 'approval' && s.status === 'running' && !!s.approval && !s.approval.decision;

/** Gates among `candidates` whose needs are all resolved: opened, skipped or cancelled (called as steps finish). */
export function resolveGates(d: Decisions, run: RunRecord, candidates: readonly StepPlan[]) {
  for (const plan of candidates) {
    if (!isGate(plan)) continue;
    const rec = run.steps[plan.id];
    if (!rec || rec.status !== 'pending' || !plan.needs.every((n) => run.steps[n] && TERMINAL_STEP.has(run.steps[n].status))) continue;
    resolveGate(d, run, plan, rec);
  }
}

/** At start: gates with no unresolved needs open now. */
export function startGates(d: Decisions, run: RunRecord) {
  resolveGates(d, run, run.plan.steps);
}

/** After a restart: open gates get their stored deadline again; gates whose needs ended meanwhile are resolved. */
export function resumeGates(d: Decisions, run: RunRecord) {
  for (const plan of run.plan.steps) {
    const rec = run.steps[plan.id];
    if (isGate(plan) && rec && open(rec) && rec.approval!.deadlineMs) armGate(d, run, rec, rec.approval!.deadlineMs);
  }
  startGates(d, run);
}

function resolveGate(d: Decisions, run: RunRecord, plan: StepPlan & { approval: ApprovalPlan }, rec: StepRecord) {
  if (run.cancelRequested) return close(d, run, rec, 'cancelled', run.message);
  for (const n of plan.needs) {
    const need = run.steps[n];
    if (need.status === 'succeeded' || tolerated(run, need)) continue;
    return close(d, run, rec, 'skipped', `skipped: needs ${n}, which ${need.status === 'failed' ? 'failed' : `was ${need.status}`}`);
  }
  const ctx = context(run);
  if (plan.when) {
    let go: unknown;
    try {
      go = evaluate(plan.when, ctx);
      if (typeof go !== 'boolean') throw new Error(`it gave ${stringify(go)}, not true or false`);
    } catch (err) {
      return close(d, run, rec, 'failed', `cannot evaluate when: ${firstLine(err)}`);
    }
    if (!go) return close(d, run, rec, 'skipped', `skipped: condition "${plan.when}" is false`);
  }
  let message: string;
  try {
    message = plan.approval.message.replace(TEMPLATE, (_m, expr: string) => stringify(evaluate(expr.trim(), ctx)));
  } catch (err) {
    return close(d, run, rec, 'failed', `cannot render the approval message: ${firstLine(err)}`);
  }
  const deadlineMs = plan.approval.timeoutMs ? d.now + plan.approval.timeoutMs : 0;
  d.change(run, rec, () => {
    rec.status = 'running';
    rec.startedMs = d.now;
    rec.message = '';
    rec.approval = { message, deadlineMs, decision: '', decidedBy: '', reason: '', decidedMs: 0 };
  });
  d.notifyStep(run, rec);
  const who = approversText(plan.approval.approvers);
  historyLine(d, run, rec, `waiting for approval by ${who}${deadlineMs ? ` (times out ${clockTime(deadlineMs, d.now)})` : ''}${message ? `: ${message}` : ''}`);
  d.log('info', { run: run.id, step: rec.id, approvers: plan.approval.approvers, deadlineMs }, 'approval gate opened');
  if (deadlineMs) armGate(d, run, rec, deadlineMs);
}

/** An approver's decision. Ignored (with a log line) when the gate is not open: the API checked, but the run moved on in between. */
export function decide(d: Decisions, ev: Decision) {
  const run = d.state.active.get(ev.runId);
  const rec = run?.steps[ev.stepId];
  if (!run || !rec || !open(rec)) {
    d.log('warn', { run: ev.runId, step: ev.stepId, by: ev.by }, 'decision for a gate that is not open ignored');
    return;
  }
  const verdict = ev.approve ? 'approved' : 'rejected';
  const text = `${verdict} by ${ev.by}${ev.reason ? `: ${ev.reason}` : ''}`;
  finishGate(d, run, rec, { decision: verdict, decidedBy: ev.by, reason: ev.reason }, ev.approve ? 'succeeded' : 'failed', text);
  d.log('info', { run: run.id, step: rec.id, decision: verdict, by: ev.by, reason: ev.reason }, 'approval gate decided');
}

/** The gate's timer fired: past its deadline it follows onTimeout; before it (a deadline past the longest timer), the timer is set again. */
export function gateTimeout(d: Decisions, runId: string, stepId: string) {
  const run = d.state.active.get(runId);
  const rec = run?.steps[stepId];
  if (!run || !rec || !open(rec)) return;
  const { deadlineMs } = rec.approval!;
  if (!deadlineMs) return;
  if (d.now < deadlineMs) return armGate(d, run, rec, deadlineMs);
  const plan = planIndex(run.plan).step(stepId)!;
  const after = formatWait(plan.approval?.timeoutMs ?? deadlineMs - rec.startedMs);
  const approve = plan.approval?.onTimeout === 'approve';
  const text = approve ? `approved: no decision within ${after} (onTimeout: approve)` : `no decision within ${after}; the gate timed out (onTimeout: fail)`;
  finishGate(d, run, rec, { decision: 'timed-out', decidedBy: 'timeout', reason: '' }, approve ? 'succeeded' : 'failed', text);
  d.log('info', { run: run.id, step: rec.id, onTimeout: approve ? 'approve' : 'fail' }, 'approval gate timed out');
}

/** The run is being cancelled: its gates that are not finished end cancelled (nobody else would end them). */
export function closeGates(d: Decisions, run: RunRecord) {
  for (const plan of run.plan.steps) {
    const rec = run.steps[plan.id];
    if (!isGate(plan) || !rec || TERMINAL_STEP.has(rec.status)) continue;
    const wasOpen = open(rec);
    if (wasOpen) d.effects.push({ type: 'clearApprovalTimer', runId: run.id, stepId: rec.id });
    close(d, run, rec, 'cancelled', run.message || 'cancelled by request');
    if (wasOpen) historyLine(d, run, rec, `gate closed: ${rec.message}`);
  }
}

function finishGate(d: Decisions, run: RunRecord, rec: StepRecord, how: Pick<ApprovalRecord, 'decision' | 'decidedBy' | 'reason'>, status: 'succeeded' | 'failed', text: string) {
  d.change(run, rec, () => {
    Object.assign(rec.approval!, how, { decidedMs: d.now });
    rec.outputs = { approved: String(status === 'succeeded'), decidedBy: how.decidedBy, reason: how.reason };
  });
  d.effects.push({ type: 'clearApprovalTimer', runId: run.id, stepId: rec.id });
  historyLine(d, run, rec, text);
  close(d, run, rec, status, text);
}

/** Ends a gate; the run may end with it. */
function close(d: Decisions, run: RunRecord, rec: StepRecord, status: 'succeeded' | 'failed' | 'skipped' | 'cancelled', message: string) {
  if (!rec.startedMs && status !== 'skipped' && status !== 'cancelled') rec.startedMs = d.now;
  d.finishStep(run, rec, status, message);
  d.checkFinished(run);
}

function armGate(d: Decisions, run: RunRecord, rec: StepRecord, deadlineMs: number) {
  d.effects.push({ type: 'setApprovalTimer', runId: run.id, stepId: rec.id, atMs: Math.min(deadlineMs, d.now + MAX_TIMER_MS) });
}

/** A line in the run's log, from the control plane (no attempt, no agent): who decided and why, next to what the steps printed. */
function historyLine(d: Decisions, run: RunRecord, rec: StepRecord, text: string) {
  const record = { t: d.now, step: rec.id, attempt: '', agent: '', stream: 'stdout' as const, text: `[drover] ${text}\n` };
  d.effects.push({ type: 'appendLog', run, records: [record] });
  d.effects.push({ type: 'notify', change: { type: 'log', run, log: record } });
}

/** What a gate's expressions see: params (not secret ones: the compiler keeps them out), the steps that ended, the run. */
function context(run: RunRecord): Record<string, unknown> {
  const steps: Record<string, { status: string; outputs: Record<string, string> }> = {};
  for (const s of Object.values(run.steps)) if (TERMINAL_STEP.has(s.status)) steps[s.id] = { status: s.status, outputs: s.outputs };
  const params = celValue(run.plan.paramsJson ? JSON.parse(run.plan.paramsJson) : { ...run.params });
  return { params, steps, run: { id: run.id, workflow: run.workflow, started: new Date(run.startedMs).toISOString() } };
}

function tolerated(run: RunRecord, step: StepRecord): boolean {
  if (step.status !== 'failed') return false;
  const index = planIndex(run.plan);
  return !!(index.step(step.id) ?? index.group(step.id))?.continueOnError;
}

/** An open gate's waiting reason: "waiting for approval by operator or alice (times out 14:02 UTC)". */
export function gateWait(run: RunRecord, rec: StepRecord, now: number): string {
  const plan = planIndex(run.plan).step(rec.id);
  const deadline = rec.approval?.deadlineMs ?? 0;
  return `waiting for approval by ${approversText(plan?.approval?.approvers ?? [])}${deadline ? ` (times out ${clockTime(deadline, now)})` : ''}`;
}

/** "operator or alice", "admin, operator or alice". */
export function approversText(approvers: readonly string[]): string {
  return approvers.length <= 1 ? (approvers[0] ?? 'nobody') : `${approvers.slice(0, -1).join(', ')} or ${approvers.at(-1)}`;
}

/** "14:02 UTC" within a day of `now`, else "2026-12-09 14:02 UTC". */
export function clockTime(ms: number, now: number): string {
  const iso = new Date(ms).toISOString();
  return Math.abs(ms - now) < 86_400_000 ? `${iso.slice(11, 16)} UTC` : `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

/** "30m", "2h", "1h30m", "45s". */
function formatWait(ms: number): string {
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return [h ? `${h}h` : '', m ? `${m}m` : '', s || (!h && !m) ? `${s}s` : ''].join('');
}

function stringify(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === null || v === undefined) return '';
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? Number(x) : x));
}

function firstLine(err: unknown): string {
  return ((err as Error).message ?? String(err)).split('\n')[0];
}
