/** Runs: the latest 50, newest first, live: status, workflow, params, started, duration, steps succeeded/total. */
import { useApp, useSubscription } from './context.js';
import { ago, duration, paramsSummary } from './format.js';
import type { RunInfo } from './messages.js';
import { href, useNow } from './route.js';
import { runTone, runWord } from './states.js';

const SUB = { type: 'subscribe', topic: 'runs' } as const;

/** Submit to end, or to now while the run goes on. */
export const runDuration = (r: RunInfo, now: number): number => (r.endedMs || now) - (r.startedMs || r.createdMs);

export function StepBar({ run }: { run: RunInfo }) {
  const c = run.stepCounts;
  if (!c || !c.total) return <span class="muted">–</span>;
  const w = (n: number) => `${(n / c.total) * 100}%`;
  return (
    <span class="stepbar" title={`${c.succeeded} succeeded, ${c.running} running, ${c.failed} failed, ${c.pending} pending, ${c.skipped} skipped, ${c.cancelled} cancelled`}>
      <span class="stepbar-track">
        <span class="seg tone-bg-succeeded" style={{ width: w(c.succeeded) }} />
        <span class="seg tone-bg-failed" style={{ width: w(c.failed) }} />
        <span class="seg tone-bg-running" style={{ width: w(c.running) }} />
      </span>
      <span class="num" data-testid="step-counts">
        {c.succeeded}/{c.total}
      </span>
    </span>
  );
}

export function RunsPage() {
  useSubscription(SUB);
  const { state } = useApp();
  const now = useNow();
  return (
    <section>
      <div class="page-head">
        <h2>Runs</h2>
        <span class="muted num">latest {state.runs.length}</span>
      </div>
      {!state.runsLoaded ? (
        <p class="empty">Loading runs…</p>
      ) : state.runs.length === 0 ? (
        <p class="empty">
          No runs yet: launch one with <code>drover run WORKFLOW.yaml -p key=value</code>; it shows up here as it starts.
        </p>
      ) : (
        <table class="grid runs">
          <colgroup>
            <col style="width:112px" />
            <col style="width:214px" />
            <col style="width:190px" />
            <col />
            <col style="width:110px" />
            <col style="width:100px" />
            <col style="width:150px" />
          </colgroup>
          <thead>
            <tr>
              <th>status</th>
              <th>run</th>
              <th>workflow</th>
              <th>params</th>
              <th>started</th>
              <th class="right">duration</th>
              <th>steps</th>
            </tr>
          </thead>
          <tbody>
            {state.runs.map((r) => (
              <tr key={r.id} class="clickable" data-testid="run-row" data-run={r.id} onClick={() => (location.hash = href({ page: 'run', id: r.id }))}>
                <td>
                  <span class={`pill tone-${runTone(r)}`}>{runWord(r)}</span>
                </td>
                <td class="mono ellipsis" title={r.id}>
                  <a href={href({ page: 'run', id: r.id })}>{r.id}</a>
                </td>
                <td class="strong ellipsis" title={r.workflow}>
                  {r.workflow}
                </td>
                <td class="ellipsis mono muted" title={paramsSummary(r.params)}>
                  {paramsSummary(r.params) || '–'}
                </td>
                <td class="num" title={new Date(r.createdMs).toISOString()}>
                  {ago(r.startedMs || r.createdMs, now)}
                </td>
                <td class="num right">{runWord(r) === 'pending' ? '–' : duration(runDuration(r, now))}</td>
                <td>
                  <StepBar run={r} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
