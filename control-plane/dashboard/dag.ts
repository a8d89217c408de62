/**
 * A run's steps as a graph to draw: one node per declared step (a fan-out or
 * forEach group is one node standing for its instances, with their count and
 * a summary by state), edges from `needs`, laid out left to right by dagre.
 * `finally` steps with no needs hang off the steps nothing else needs.
 */
import dagre from '@dagrejs/dagre';
import type { StepInfo } from './messages.js';
import { stepTone, type Tone } from './states.js';

export const NODE_W = 164;
export const NODE_H = 56;

export interface DagNode {
  id: string;
  step: StepInfo;
  /** Instances of a group node (empty for a plain step). */
  instances: StepInfo[];
  tone: Tone;
  /** For a group: instances per tone. */
  summary: Partial<Record<Tone, number>>;
  x: number;
  y: number;
}

export interface DagEdge {
  from: string;
  to: string;
  points: { x: number; y: number }[];
  implied: boolean;
}

export interface Dag {
  nodes: DagNode[];
  edges: DagEdge[];
  width: number;
  height: number;
}

/** A group's tone: failed if any instance failed, running if any runs or waits, succeeded when all did, else the group's own. */
function groupTone(group: StepInfo, instances: StepInfo[], summary: Partial<Record<Tone, number>>): Tone {
  if (!instances.length) return stepTone(group);
  if (summary.failed) return 'failed';
  if (summary.waiting) return 'waiting';
  if (summary.running) return 'running';
  if (summary.succeeded === instances.length) return 'succeeded';
  if ((summary.succeeded ?? 0) + (summary.skipped ?? 0) + (summary.cancelled ?? 0) === instances.length) return stepTone(group);
  return summary.succeeded ? 'running' : stepTone(group);
}

export function buildDag(steps: StepInfo[]): Dag {
  const top = steps.filter((s) => !s.parent);
  const byParent = new Map<string, StepInfo[]>();
  const parentOf = new Map<string, string>();
  for (const s of steps) {
    if (!s.parent) continue;
    parentOf.set(s.id, s.parent);
    const list = byParent.get(s.parent);
    if (list) list.push(s);
    else byParent.set(s.parent, [s]);
  }
  const owner = (id: string): string => parentOf.get(id) || id;
  const ids = new Set(top.map((s) => s.id));

  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'LR', nodesep: 16, ranksep: 44, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const s of top) g.setNode(s.id, { width: NODE_W, height: NODE_H });

  const edges: { from: string; to: string; implied: boolean }[] = [];
  for (const s of top) {
    const needs = new Set(s.needs.map(owner).filter((n) => ids.has(n) && n !== s.id));
    for (const n of needs) edges.push({ from: n, to: s.id, implied: false });
  }
  const needed = new Set(edges.map((e) => e.from));
  const sinks = top.filter((s) => !s.isFinally && !needed.has(s.id));
  for (const f of top.filter((s) => s.isFinally && s.needs.length === 0)) for (const s of sinks) edges.push({ from: s.id, to: f.id, implied: true });
  for (const e of edges) g.setEdge(e.from, e.to);
  dagre.layout(g);

  const nodes = top.map((s): DagNode => {
    const instances = byParent.get(s.id) ?? [];
    const summary: Partial<Record<Tone, number>> = {};
    for (const i of instances) summary[stepTone(i)] = (summary[stepTone(i)] ?? 0) + 1;
    const n = g.node(s.id);
    const tone = s.kind === 'group' || instances.length ? groupTone(s, instances, summary) : stepTone(s);
    return { id: s.id, step: s, instances, tone, summary, x: n.x - NODE_W / 2, y: n.y - NODE_H / 2 };
  });
  const graph = g.graph();
  return {
    nodes,
    edges: edges.map((e) => ({ ...e, points: g.edge(e.from, e.to).points ?? [] })),
    width: Math.max(graph.width ?? 0, NODE_W),
    height: Math.max(graph.height ?? 0, NODE_H),
  };
}
