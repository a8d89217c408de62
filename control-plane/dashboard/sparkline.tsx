/** A fixed-size SVG sparkline of percentages (0..100), newest on the right. */
import type { Sample } from './messages.js';

const W = 132;
const H = 30;

export function Sparkline({ samples, pick, label }: { samples: Sample[]; pick: (s: Sample) => number; label: string }) {
  const last = samples.length ? pick(samples[samples.length - 1]) : NaN;
  const pts = samples.map((s, i) => {
    const x = samples.length === 1 ? W : (i / (samples.length - 1)) * W;
    const y = H - 1 - (Math.max(0, Math.min(100, pick(s))) / 100) * (H - 2);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  return (
    <div class="spark">
      <span class="spark-label">{label}</span>
      <svg width={W} height={H} viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${label} history`}>
        <line x1="0" y1={H - 0.5} x2={W} y2={H - 0.5} class="spark-base" />
        {pts.length > 1 && <polygon class="spark-area" points={`0,${H} ${pts.join(' ')} ${W},${H}`} />}
        {pts.length > 1 && <polyline class="spark-line" points={pts.join(' ')} />}
        {pts.length === 1 && <circle class="spark-dot" cx={W - 2} cy={pts[0].split(',')[1]} r="2" />}
      </svg>
      <span class="spark-value num">{Number.isFinite(last) ? `${last.toFixed(0)}%` : '–'}</span>
    </div>
  );
}
