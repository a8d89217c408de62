/** A small fixed-size trend chart: runs ended per bucket (succeeded green, failed red, stacked) and the cycle-time p50 as a line. */
import { duration } from './format.js';
import type { StatsBucket } from './messages.js';

const W = 570;
const H = 56;

export function TrendChart({ trend }: { trend: StatsBucket[] }) {
  if (!trend.length) return <svg class="trend" width={W} height={H} />;
  const maxEnded = Math.max(1, ...trend.map((b) => b.ended));
  const maxCycle = Math.max(1, ...trend.map((b) => b.cycleP50Ms));
  const bw = W / trend.length;
  const y = (n: number) => (n / maxEnded) * (H - 8);
  const line = trend
    .map((b, i) => (b.ended ? `${(i * bw + bw / 2).toFixed(1)},${(H - 2 - (b.cycleP50Ms / maxCycle) * (H - 10)).toFixed(1)}` : ''))
    .filter(Boolean)
    .join(' ');
  return (
    <svg class="trend" width={W} height={H} viewBox={`0 0 ${W} ${H}`} role="img" aria-label="trend">
      <line x1="0" y1={H - 0.5} x2={W} y2={H - 0.5} class="spark-base" />
      {trend.map((b, i) => {
        const other = Math.max(0, b.ended - b.succeeded - b.failed);
        const x = i * bw + 1;
        const w = Math.max(1, bw - 2);
        const hs = y(b.succeeded);
        const hf = y(b.failed);
        const ho = y(other);
        return (
          <g key={b.startMs}>
            <title>{`${new Date(b.startMs).toLocaleString()}: ${b.ended} ended, ${b.succeeded} succeeded, ${b.failed} failed${b.ended ? `, cycle p50 ${duration(b.cycleP50Ms)}` : ''}`}</title>
            <rect x={x} y={H - hs} width={w} height={hs} class="tone-fill-succeeded" />
            <rect x={x} y={H - hs - hf} width={w} height={hf} class="tone-fill-failed" />
            <rect x={x} y={H - hs - hf - ho} width={w} height={ho} class="tone-fill-pending" />
            <rect x={i * bw} y="0" width={bw} height={H} fill="transparent" />
          </g>
        );
      })}
      {line && <polyline points={line} class="trend-line" />}
    </svg>
  );
}
