import type { AgentMatch, PlanPreview, PreviewStep } from '../../types.js';
import { formatDeclared } from '../../../common/duration.js';
import { shellQuote } from '../shell.js';
import { formatProblemLine } from './problems.js';

/**
 * Lists longer than this (matching agents, fan-out instances) are cut in the
 * text view, which says how many were left out; `-o json` has them all.
 */
export const PLAN_LIST_LIMIT = 8;

/** How the plan was asked for, to title it and to print the command that starts it. */
export interface PlanTextContext {
  /** The FILE or NAME[@VERSION] the user gave. */
  workflowArg: string;
  /** The command that starts exactly this plan, ending with `--plan-hash <hash>`. */
  runCommand: string;
}

function matchText(m: AgentMatch): string {
  return `${m.name} (${m.state}${m.draining ? ', draining' : ''})`;
}

function list(items: readonly string[], noun: string): string {
  if (items.length <= PLAN_LIST_LIMIT) return items.join(', ');
  return `${items.slice(0, PLAN_LIST_LIMIT).join(', ')}, … (${items.length - PLAN_LIST_LIMIT} more ${noun}; -o json lists all)`;
}

/** "role=web, every matching agent, 2 at a time, up to 1 failure". */
function placement(s: PreviewStep): string {
  const ssh = s.kind === 'ssh';
  const parts = ssh
    ? [s.target, s.strategy === 'all' ? 'every matching device' : 'one device', 'via a proxy agent']
    : s.target
    ? [s.target, s.strategy === 'all' ? 'every matching agent' : 'one agent']
    : [s.strategy === 'all' ? 'every agent' : 'any one agent'];
  if (s.waitMs > 0) parts.push(`waits up to ${formatDeclared(s.waitMs)} when none is usable`);
  if (s.instances.length) {
    parts.push(s.maxParallel > 0 ? `${s.maxParallel} at a time` : 'all at once');
    if (s.maxFailures > 0) parts.push(`up to ${s.maxFailures} failure${s.maxFailures === 1 ? '' : 's'} tolerated`);
  }
  return parts.join(', ');
}

function detailLines(s: PreviewStep): [string, string][] {
  const rows: [string, string][] = [];
  if (s.needs.length) rows.push(['needs', s.needs.join(', ')]);
  if (s.when) rows.push(['when', s.when]);
  if (s.kind === 'ssh') rows.push(['proxy agents now', s.matches.length ? list(s.matches.map(matchText), 'agents') : "none for the device's network now"]);
  else rows.push(['agents now', s.matches.length ? list(s.matches.map(matchText), 'agents') : 'none match the target now']);
  if (s.instances.length) {
    rows.push([`instances (${s.instances.length})`, list(s.instances, 'instances')]);
    if (s.agent) rows.push(['runs on', s.agent]);
  } else {
    rows.push(['runs on', s.agent || (s.waitMs > 0 ? `no agent is available now; the run is accepted and the step waits up to ${formatDeclared(s.waitMs)} for one (target.wait)` : 'no agent is available now')]);
  }
  return rows;
}

/**
 * The text of `drover plan`: a title, the params, each wave with its steps
 * (kind, target and strategy, matching agents now, where it runs or what it
 * fans out to, its condition, `finally`), warnings, the plan hash and the
 * command that starts exactly this plan; or, when a run would be refused
 * now (`blockers`), the reasons instead of a hash.
 */
export function planText(p: PlanPreview, ctx: PlanTextContext): string {
  const out: string[] = [];
  const from = p.version ? `version ${p.version} from the registry` : ctx.workflowArg;
  out.push(`Plan for ${p.workflow} (${from})`);
  const params = Object.keys(p.params).sort();
  out.push(`Params: ${params.length ? params.map((k) => shellQuote(`${k}=${p.params[k]}`)).join(' ') : '-'}`);

  const steps = p.waves.flatMap((w) => w.steps);
  const idWidth = Math.max(0, ...steps.map((s) => s.id.length));
  const kindWidth = Math.max(0, ...steps.map((s) => s.kind.length));
  const labelWidth = Math.max(0, ...steps.flatMap((s) => detailLines(s).map(([label]) => label.length + 1)));
  for (const wave of p.waves) {
    const allFinally = wave.steps.length > 0 && wave.steps.every((s) => s.isFinally);
    out.push('', `Wave ${wave.index + 1}${allFinally ? ' (finally: runs whatever happened before)' : ''}`);
    for (const s of wave.steps) {
      const mark = s.isFinally && !allFinally ? '  [finally]' : '';
      out.push(`  ${s.id.padEnd(idWidth)}  ${s.kind.padEnd(kindWidth)}  ${placement(s)}${mark}`);
      for (const [label, value] of detailLines(s)) out.push(`      ${`${label}:`.padEnd(labelWidth)}  ${value}`);
    }
  }
  if (p.warnings.length) {
    out.push('', 'Warnings:');
    for (const w of p.warnings) out.push(`  ${formatProblemLine(ctx.workflowArg, w)}`);
  }
  if (p.blockers.length) {
    // No hash to offer: a run of this plan would be refused now.
    out.push('', 'Cannot start now:');
    for (const b of p.blockers) out.push(`  ${formatProblemLine(ctx.workflowArg, b)}`);
    return out.join('\n') + '\n';
  }
  out.push('', `Plan hash: ${p.hash}`, 'Start exactly this plan (refused if it has changed by then):', `  ${ctx.runCommand}`);
  return out.join('\n') + '\n';
}
