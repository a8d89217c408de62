import type { Problems } from './problems.js';
import type { RawStep } from './raw.js';
import { formatPath } from './source.js';
import { didYouMean } from './suggest.js';

/** Duplicate ids, unknown or self needs, and cycles. */
export function checkGraph(steps: RawStep[], problems: Problems) {
  const seen = new Map<string, RawStep>();
  for (const s of steps) {
    const first = seen.get(s.id);
    if (first) problems.add([...s.path, 'id'], `duplicate step id "${s.id}" (first used at ${formatPath(first.path)}); step ids must be unique`);
    else seen.set(s.id, s);
  }
  const ids = [...seen.keys()];
  const edges = new Map<string, string[]>();
  for (const s of steps) {
    const deps: string[] = [];
    (Array.isArray(s.doc.needs) ? s.doc.needs : []).forEach((n: unknown, j: number) => {
      if (typeof n !== 'string') return;
      const at = [...s.path, 'needs', j];
      if (n === s.id) problems.add(at, `step "${s.id}" cannot need itself`);
      else if (!seen.has(n)) problems.add(at, `unknown step "${n}" in needs${didYouMean(n, ids)}`);
      else if (!s.isFinally && seen.get(n)!.isFinally) problems.add(at, `step "${s.id}" cannot need finally step "${n}": finally steps run after all others`);
      else deps.push(n);
    });
    if (!edges.has(s.id)) edges.set(s.id, deps);
  }
  const cycle = findCycle(ids, edges);
  if (cycle) problems.add([...seen.get(cycle[0])!.path, 'needs'], `dependency cycle: ${cycle.join(' -> ')}; remove one of these needs`);
}

/** Returns one cycle as a list of ids (first repeated at the end), if any. */
export function findCycle(ids: string[], edges: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (id: string): string[] | undefined => {
    state.set(id, 1);
    stack.push(id);
    for (const dep of edges.get(id) ?? []) {
      if (state.get(dep) === 1) return [...stack.slice(stack.indexOf(dep)), dep];
      if (!state.has(dep)) {
        const found = visit(dep);
        if (found) return found;
      }
    }
    stack.pop();
    state.set(id, 2);
    return undefined;
  };
  for (const id of [...ids].sort()) {
    if (!state.has(id)) {
      const found = visit(id);
      if (found) return found;
    }
  }
  return undefined;
}
