/**
 * One run: its DAG, a row per step (duration, CPU, peak memory, why it waits),
 * and the selected step's live logs; operators and admins may cancel it,
 * and approvers decide its approval steps (approvals.tsx).
 */
import { useMemo, useState } from 'preact/hooks';
import { ApprovalPanel } from './approvals.js';
import { useApp, useSubscription } from './context.js';
import { buildDag } from './dag.js';
import { DagView } from './dag-view.js';
import { bytes, clock, cpu, duration, paramsSummary } from './format.js';
import { LogView } from './logs.js';
import type { StepInfo } from './messages.js';
import { href, useNow } from './route.js';
import { StepBar, runDuration } from './runs.js';
import { runEnded, runTone, runWord, stepTone, stepWord } from './states.js';

/** The graph's box: as tall as the laid-out graph (a run's graph keeps its shape while it runs), within these bounds; wider graphs scale down. */
const DAG_MIN_H = 110;
const DAG_MAX_H = 300;

function StepRow({ s, selected, onSelect, now }: { s: StepInfo; selected: boolean; onSelect: () => void; now: number }) {
  const tone = stepTone(s);
  const ran = s.startedMs > 0;
  const note = s.waiting || s.message;
  return (
    <tr class={`clickable${selected ? ' selected' : ''}${s.parent ? ' instance' : ''}`} onClick={onSelect} data-testid="step-row" data-step={s.id}>
      <td class="mono ellipsis" title={s.id}>
        {s.id}
        {s.isFinally && <span class="tag">finally</span>}
        {s.reusedFrom && (
          <span class="tag" title={`copied from run ${s.reusedFrom}: not run again`} data-testid="reused-tag">
            reused
          </span>
        )}
      </td>
      <td>
        <span class={`pill tone-${tone}`}>{tone === 'waiting' ? 'waiting' : stepWord(s)}</span>
      </td>
      <td class="ellipsis">{s.kind === 'group' ? <span class="muted">group</span> : s.agent || '–'}</td>
      <td class="num right">{ran ? duration((s.endedMs || now) - s.startedMs) : '–'}</td>
      <td class="num right">{cpu(s.cpuSeconds)}</td>
      <td class="num right">{bytes(s.peakRssBytes)}</td>
      <td class={`ellipsis${s.blocked ? ' tone-text-waiting' : tone === 'failed' ? ' tone-text-failed' : ' muted'}`} title={note}>
        {note || (ran && s.kind !== 'group' && s.endedMs ? `exit ${s.exitCode}` : '')}
      </td>
    </tr>
  );
}

export function RunPage({ id }: { id: string }) {
  const { state, feed } = useApp();
  const now = useNow();
  const [selected, setSelected] = useState('');
  useSubscription({ type: 'subscribe', topic: 'run', id });
  // The address may hold a unique prefix of the id: the feed answers with the whole one.
  const detail = state.detail && state.detail.run.id.startsWith(id) ? state.detail : null;
  const runId = detail?.run.id ?? id;
  const steps = useMemo(() => (detail ? [...detail.steps.values()] : []), [detail?.steps]);
  const dag = useMemo(() => buildDag(steps), [steps]);
  const ordered = useMemo(() => graphOrder(steps), [steps]);
  const sel = detail?.steps.get(selected);
  const isGroup = !!sel && (sel.kind === 'group' || steps.some((s) => s.parent === sel.id));
  useSubscription(sel ? { type: 'subscribe', topic: 'logs', run: runId, step: isGroup ? '' : sel.id } : null);

  if (!detail) {
    return (
      <section>
        <p class="empty">
          {state.notice?.code === 'RUN_NOT_FOUND' ? `No run ${id}.` : 'Loading the run…'} <a href={href({ page: 'runs' })}>All runs</a>
        </p>
      </section>
    );
  }
  const run = detail.run;
  const canCancel = (state.role === 'operator' || state.role === 'admin') && !runEnded(run);
  const logs = state.logs && state.logs.run === runId && sel && state.logs.step === (isGroup ? '' : sel.id) ? state.logs.lines : [];
  const shownLogs = isGroup ? logs.filter((l) => detail.steps.get(l.stepId)?.parent === sel!.id) : logs;

  return (
    <section class="run-page">
      <div class="page-head">
        <a href={href({ page: 'runs' })} class="muted">
          Runs
        </a>
        <span class="muted">/</span>
        <h2 class="ellipsis">{run.workflow}</h2>
        <span class={`pill tone-${runTone(run)}`} data-testid="run-status">
          {runWord(run)}
        </span>
        <span class="mono muted" title={run.id}>
          {run.id}
        </span>
        <span class="spacer" />
        {canCancel && (
          <button
            class="danger"
            data-testid="cancel"
            onClick={() => {
              if (confirm(`Cancel run ${run.id} (${run.workflow})? Steps still running are stopped.`)) feed.request({ type: 'cancel', run: run.id, reason: 'cancelled from the dashboard' });
            }}
          >
            Cancel run
          </button>
        )}
      </div>
      <div class="run-facts">
        <span>
          <span class="muted">started</span> <span class="num">{clock(run.startedMs || run.createdMs, now)}</span>
        </span>
        <span>
          <span class="muted">duration</span> <span class="num">{duration(runDuration(run, now))}</span>
        </span>
        <span class="run-steps">
          <span class="muted">steps</span> <StepBar run={run} />
        </span>
        <span class="ellipsis mono" title={paramsSummary(run.params)}>
          <span class="muted">params</span> {paramsSummary(run.params) || '–'}
        </span>
        {run.trigger && run.trigger !== 'api' && run.trigger !== 'rerun' && (
          <span class="ellipsis mono" title={run.trigger}>
            <span class="muted">started by</span> {run.trigger}
          </span>
        )}
        {run.rerunOf && (
          <span class="mono" data-testid="rerun-of">
            <span class="muted">re-run of</span> <a href={href({ page: 'run', id: run.rerunOf })}>{run.rerunOf}</a>
          </span>
        )}
      </div>
      {run.message && <p class={`run-message tone-text-${runTone(run)}`}>{run.message}</p>}
      <ApprovalPanel runId={run.id} steps={ordered} now={now} />
      <div class="run-body">
        <div class="run-left">
          <div class="dag-box" style={{ height: `${Math.min(DAG_MAX_H, Math.max(DAG_MIN_H, dag.height + 10))}px` }}>
            {steps.length ? <DagView dag={dag} selected={sel ? (sel.parent || sel.id) : ''} onSelect={setSelected} now={now} /> : <p class="empty">No steps.</p>}
          </div>
          <div class="steps-box">
            <table class="grid steps">
              <colgroup>
                <col style="width:168px" />
                <col style="width:112px" />
                <col style="width:96px" />
                <col style="width:96px" />
                <col style="width:70px" />
                <col style="width:92px" />
                <col />
              </colgroup>
              <thead>
                <tr>
                  <th>step</th>
                  <th>status</th>
                  <th>agent</th>
                  <th class="right">duration</th>
                  <th class="right">CPU</th>
                  <th class="right">memory</th>
                  <th>note</th>
                </tr>
              </thead>
              <tbody>
                {ordered.map((s) => (
                  <StepRow key={s.id} s={s} selected={s.id === selected} onSelect={() => setSelected(s.id)} now={now} />
                ))}
              </tbody>
            </table>
          </div>
        </div>
        <aside class="log-panel">
          <div class="log-head">
            <span class="strong">{sel ? `logs · ${sel.id}` : 'logs'}</span>
            {sel && <span class={`pill tone-${stepTone(sel)}`}>{stepWord(sel)}</span>}
          </div>
          <LogView
            lines={sel ? shownLogs : []}
            showStep={isGroup}
            now={now}
            empty={sel ? (sel.startedMs || isGroup ? 'No output yet.' : 'This step has not started: no output yet.') : 'Click a step in the graph or the table to see its output.'}
          />
        </aside>
      </div>
    </section>
  );
}

/** Steps in the order of the graph: a step after what it needs, instances right after their group, finally steps last. */
function graphOrder(all: StepInfo[]): StepInfo[] {
  const byId = new Map(all.map((x) => [x.id, x]));
  const depths = new Map<string, number>();
  const depth = (x: StepInfo, seen: Set<string>): number => {
    const known = depths.get(x.id);
    if (known !== undefined) return known;
    if (seen.has(x.id)) return 0;
    seen.add(x.id);
    const needs = x.needs.map((n) => byId.get(n)).filter((n): n is StepInfo => !!n);
    const d = needs.length ? 1 + Math.max(...needs.map((n) => depth(n, seen))) : 0;
    depths.set(x.id, d);
    return d;
  };
  const key = (s: StepInfo) => {
    const base = (s.parent && byId.get(s.parent)) || s;
    return { fin: base.isFinally ? 1 : 0, depth: depth(base, new Set()), base: base.id, inst: s.parent ? 1 : 0 };
  };
  const keys = new Map(all.map((s) => [s.id, key(s)]));
  return [...all].sort((a, b) => {
    const ka = keys.get(a.id)!;
    const kb = keys.get(b.id)!;
    return ka.fin - kb.fin || ka.depth - kb.depth || ka.base.localeCompare(kb.base) || ka.inst - kb.inst || a.id.localeCompare(b.id, undefined, { numeric: true });
  });
}
