/**
 * The document as written, before (or despite) schema validation: checks read
 * it as far as its shape allows, so a type error in one field does not hide a
 * cycle in another.
 */
import type { PathSegment } from './source.js';

/** A mapping (not null, not a list). */
export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A declared step (in steps or finally) with an id, as found in the raw document. */
export interface RawStep {
  id: string;
  path: PathSegment[];
  doc: Record<string, unknown>;
  needs: string[];
  isFinally: boolean;
}

/** The declared steps with a string id, in order: steps, then finally. */
export function rawSteps(doc: Record<string, unknown>): RawStep[] {
  const out: RawStep[] = [];
  for (const section of ['steps', 'finally'] as const) {
    const list = doc[section];
    if (!Array.isArray(list)) continue;
    list.forEach((s, i) => {
      if (!isObject(s) || typeof s.id !== 'string') return;
      const needs = Array.isArray(s.needs) ? s.needs.filter((n): n is string => typeof n === 'string') : [];
      out.push({ id: s.id, path: [section, i], doc: s, needs, isFinally: section === 'finally' });
    });
  }
  return out;
}

/** Fields whose text may hold ${{ }} templates, per step kind (paths below the step). */
export function templateFields(step: Record<string, unknown>): [PathSegment[], string][] {
  const out: [PathSegment[], string][] = [];
  const str = (path: PathSegment[], v: unknown) => typeof v === 'string' && out.push([path, v]);
  if (isObject(step.env)) for (const [k, v] of Object.entries(step.env)) str(['env', k], v);
  if (Array.isArray(step.command)) step.command.forEach((v, i) => str(['command', i], v));
  if (isObject(step.http)) {
    str(['http', 'url'], step.http.url);
    str(['http', 'body'], step.http.body);
    if (isObject(step.http.headers)) for (const [k, v] of Object.entries(step.http.headers)) str(['http', 'headers', k], v);
  }
  if (isObject(step.file)) {
    str(['file', 'path'], step.file.path);
    str(['file', 'content'], step.file.content);
  }
  if (isObject(step.approval)) str(['approval', 'message'], step.approval.message);
  if (isObject(step.ssh)) {
    str(['ssh', 'host'], step.ssh.host);
    if (Array.isArray(step.ssh.commands)) {
      step.ssh.commands.forEach((c, i) => (isObject(c) ? str(['ssh', 'commands', i, 'command'], c.command) : str(['ssh', 'commands', i], c)));
    }
  }
  return out;
}
