/** The run's DAG as SVG: nodes coloured by state, a group node with its instance count and states; click selects a step. */
import type { Dag, DagNode } from './dag.js';
import { NODE_H, NODE_W } from './dag.js';
import { duration } from './format.js';
import { stepWord, type Tone } from './states.js';

const SUMMARY_ORDER: [Tone, string][] = [
  ['succeeded', '✓'],
  ['running', '▶'],
  ['waiting', '…'],
  ['failed', '✗'],
  ['pending', '○'],
  ['skipped', '–'],
  ['cancelled', '⊘'],
];

function path(points: { x: number; y: number }[]): string {
  if (points.length < 2) return '';
  const [first, ...rest] = points;
  if (rest.length === 1) return `M${first.x},${first.y} L${rest[0].x},${rest[0].y}`;
  let d = `M${first.x},${first.y}`;
  for (let i = 0; i < rest.length - 1; i++) {
    const mid = { x: (rest[i].x + rest[i + 1].x) / 2, y: (rest[i].y + rest[i + 1].y) / 2 };
    d += ` Q${rest[i].x},${rest[i].y} ${i === rest.length - 2 ? `${rest[i + 1].x},${rest[i + 1].y}` : `${mid.x},${mid.y}`}`;
  }
  return d;
}

function nodeSubtitle(n: DagNode, now: number): string {
  if (n.instances.length) {
    return SUMMARY_ORDER.filter(([t]) => n.summary[t])
      .map(([t, sym]) => `${n.summary[t]}${sym}`)
      .join(' ');
  }
  const s = n.step;
  const word = n.tone === 'waiting' ? 'waiting' : stepWord(s);
  if (s.reusedFrom) return `${word} · reused`;
  if (!s.startedMs) return word;
  return `${word} · ${duration((s.endedMs || now) - s.startedMs)}`;
}

export function DagView({ dag, selected, onSelect, now }: { dag: Dag; selected: string; onSelect: (id: string) => void; now: number }) {
  return (
    <svg
      class="dag"
      viewBox={`0 0 ${dag.width} ${dag.height}`}
      style={{ maxWidth: `${dag.width}px`, maxHeight: `${dag.height}px` }}
      preserveAspectRatio="xMidYMid meet"
      role="img"
      aria-label="run graph"
    >
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
          <path d="M0,0 L10,5 L0,10 z" class="dag-arrow" />
        </marker>
      </defs>
      {dag.edges.map((e) => (
        <path key={`${e.from}>${e.to}`} d={path(e.points)} class={e.implied ? 'dag-edge implied' : 'dag-edge'} marker-end="url(#arrow)" />
      ))}
      {dag.nodes.map((n) => (
        <g
          key={n.id}
          class={`dag-node tone-${n.tone}${selected === n.id ? ' selected' : ''}`}
          transform={`translate(${n.x},${n.y})`}
          onClick={() => onSelect(n.id)}
          data-testid="dag-node"
          data-step={n.id}
          data-tone={n.tone}
          role="button"
        >
          <title>{n.step.waiting || n.step.message || n.id}</title>
          <rect width={NODE_W} height={NODE_H} rx="8" />
          <rect class="dag-stripe" width="5" height={NODE_H} rx="2" />
          <text x="14" y="22" class="dag-title">
            {n.id.length > 18 ? `${n.id.slice(0, 17)}…` : n.id}
          </text>
          {n.instances.length > 0 && (
            <text x={NODE_W - 10} y="22" class="dag-count" text-anchor="end">
              ×{n.instances.length}
            </text>
          )}
          <text x="14" y="42" class="dag-sub">
            {nodeSubtitle(n, now)}
          </text>
        </g>
      ))}
    </svg>
  );
}
