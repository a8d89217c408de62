/** Metrics: the four orchestration metrics per workflow and overall (the `stats` topic), each with its trend. */
import { useState } from 'preact/hooks';
import { TrendChart } from './chart.js';
import { useApp, useSubscription } from './context.js';
import { bytes, duration, percent } from './format.js';
import type { WorkflowStats } from './messages.js';

const WINDOWS: [string, number][] = [
  ['1 h', 3_600_000],
  ['24 h', 86_400_000],
  ['7 d', 7 * 86_400_000],
];

function Figure({ label, value, sub, tone }: { label: string; value: string; sub: [string, string]; tone?: string }) {
  return (
    <div class="figure">
      <span class="figure-label">{label}</span>
      <span class={`figure-value num${tone ? ` tone-text-${tone}` : ''}`}>{value}</span>
      <span class="figure-sub num muted">{sub[0]}</span>
      <span class="figure-sub num muted">{sub[1]}</span>
    </div>
  );
}

function WorkflowTile({ w, title }: { w: WorkflowStats; title: string }) {
  const none = w.runsEnded === 0;
  return (
    <article class="tile metrics-tile" data-testid="workflow-stats" data-workflow={w.workflow}>
      <div class="tile-head">
        <span class="strong ellipsis">{title}</span>
        <span class="muted num">
          {w.runsEnded} ended · {w.runsActive} active
        </span>
      </div>
      <div class="figures">
        <Figure
          label="completion"
          value={none ? '–' : percent(w.completionRate)}
          sub={[`${w.runsSucceeded} ok · ${w.runsFailed} failed`, `${w.runsCancelled} cancelled`]}
          tone={none ? undefined : w.completionRate >= 0.95 ? 'succeeded' : w.completionRate < 0.8 ? 'failed' : 'waiting'}
        />
        <Figure label="cycle time p50" value={none ? '–' : duration(w.cycleP50Ms)} sub={[`p95 ${none ? '–' : duration(w.cycleP95Ms)}`, `max ${none ? '–' : duration(w.cycleMaxMs)}`]} />
        <Figure
          label="error rate"
          value={w.attempts ? percent(w.attemptErrorRate) : '–'}
          sub={[`${w.attemptsFailed} of ${w.attempts} attempts`, `runs failed ${none ? '–' : percent(w.runErrorRate)}`]}
          tone={w.attemptsFailed ? 'failed' : undefined}
        />
        <Figure
          label="CPU time"
          value={`${w.cpuSeconds.toFixed(w.cpuSeconds < 100 ? 2 : 0)} s`}
          sub={[`peak mem ${bytes(w.peakRssBytes)}`, `fleet ${w.fleetCpuPercent.toFixed(0)}% CPU · ${w.fleetMemoryPercent.toFixed(0)}% mem`]}
        />
      </div>
      <TrendChart trend={w.trend} />
      <div class="trend-legend muted">
        <span>
          runs ended per slice: <span class="tone-text-succeeded">succeeded</span> · <span class="tone-text-failed">failed</span> ·{' '}
          <span class="tone-text-cancelled">cancelled</span>
        </span>
        <span>line: cycle time p50</span>
      </div>
    </article>
  );
}

export function MetricsPage() {
  const [windowMs, setWindowMs] = useState(86_400_000);
  useSubscription({ type: 'subscribe', topic: 'stats', windowMs });
  const { state } = useApp();
  const stats = state.stats;
  return (
    <section>
      <div class="page-head">
        <h2>Metrics</h2>
        <span class="muted">completion rate, cycle time, error rate, resource use</span>
        <span class="spacer" />
        <span class="segmented" role="group" aria-label="window">
          {WINDOWS.map(([label, ms]) => (
            <button key={label} class={ms === windowMs ? 'active' : ''} onClick={() => setWindowMs(ms)}>
              {label}
            </button>
          ))}
        </span>
      </div>
      {!stats ? (
        <p class="empty">Loading metrics…</p>
      ) : stats.workflows.length === 0 ? (
        <p class="empty">No runs in this window: launch one with <code>drover run WORKFLOW.yaml</code> and its metrics appear here when it ends.</p>
      ) : (
        <div class="tiles metrics">
          {stats.overall && <WorkflowTile w={stats.overall} title="all workflows" />}
          {stats.workflows.map((w) => (
            <WorkflowTile key={w.workflow} w={w} title={w.workflow} />
          ))}
        </div>
      )}
    </section>
  );
}
