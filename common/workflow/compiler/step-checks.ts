import { expressionChecks } from './expression-checks.js';
import { TEMPLATE } from '../../template.js';
import { hasTemplate, stepRefs, unwrap, type ParamType } from './expressions.js';
import type { Problems } from './problems.js';
import { isObject, templateFields, type RawStep } from './raw.js';
import { checkApproval } from './approval-rules.js';
import { RESERVED_KINDS, STEP_KINDS } from './schema.js';
import { checkSsh } from './ssh-rules.js';

/** Step kinds, shell-text safety, expressions and their references. */
export function checkSteps(raw: Record<string, unknown>, steps: RawStep[], types: Record<string, ParamType>, problems: Problems) {
  const regular = steps.filter((s) => !s.isFinally).map((s) => s.id);
  const { checkExpr, checkTemplates } = expressionChecks(types, problems);

  if (isObject(raw.env)) for (const [k, v] of Object.entries(raw.env)) if (typeof v === 'string') checkTemplates(v, ['env', k], [], false);

  for (const s of steps) {
    const { doc, path } = s;
    const reserved: readonly string[] = RESERVED_KINDS;
    const kinds = [...STEP_KINDS, ...reserved].filter((k) => doc[k] !== undefined);
    for (const k of kinds.filter((k) => reserved.includes(k))) {
      problems.add([...path, k], `step kind "${k}" is reserved for a later release and cannot run yet; use one of ${STEP_KINDS.join(', ')}`);
    }
    if (kinds.length === 0) problems.add(path, `step "${s.id}" has nothing to do: give it one of ${STEP_KINDS.join(', ')}`);
    if (kinds.length > 1) problems.add([...path, kinds[1]], `step "${s.id}" has more than one kind (${kinds.join(', ')}); a step does exactly one thing`);

    const forEach = typeof doc.forEach === 'string';
    const needs = s.isFinally ? [...regular, ...s.needs] : s.needs;
    for (const [field, text] of [
      ['run', doc.run],
      ['script', isObject(doc.script) ? doc.script.body : doc.script],
    ] as const) {
      if (typeof text !== 'string' || !hasTemplate(text)) continue;
      const at = field === 'script' && isObject(doc.script) ? [...path, 'script', 'body'] : [...path, field];
      problems.add(at, shellRewrite(text));
    }
    for (const [sub, text] of templateFields(doc)) checkTemplates(text, [...path, ...sub], needs, forEach);
    if (typeof doc.when === 'string') checkExpr(unwrap(doc.when), [...path, 'when'], needs, forEach, true);
    if (forEach) {
      const expr = unwrap(doc.forEach as string);
      checkExpr(expr, [...path, 'forEach'], [], false);
      if (stepRefs(expr).length) problems.add([...path, 'forEach'], 'forEach is expanded before the run starts, so it may use params but not step outputs');
      if (isObject(doc.target) && doc.target.strategy === 'all') {
        problems.add([...path, 'forEach'], 'forEach and target.strategy "all" cannot be combined; fan out over agents or over items, not both');
      }
    }
    const t = isObject(doc.target) ? doc.target : {};
    if ((t.maxParallel !== undefined || t.maxFailures !== undefined) && !forEach && t.strategy !== 'all') {
      problems.add([...path, 'target'], 'maxParallel and maxFailures apply to fan-outs: add strategy: all or forEach');
    }
    if (t.wait !== undefined && t.strategy === 'all') {
      problems.add(
        [...path, 'target', 'wait'],
        'target.wait applies to steps that run on one agent (strategy one, or target.agent): a fan-out (strategy all) expands over the agents that match when the run is submitted, so there is no agent for it to wait for; drop wait, or use strategy one',
      );
    }
    if (doc.approval !== undefined) checkApproval(doc, s.isFinally, path, needs, problems);
    if (isObject(doc.ssh)) checkSsh(doc.ssh, t, path, problems);
    else if (t.device !== undefined) {
      problems.add([...path, 'target', 'device'], 'target.device selects a network device, which only ssh steps drive; use target.agent or labels to pick agents');
    }
  }
}

/** The error for ${{ }} in shell text, with the env-based rewrite. */
function shellRewrite(text: string): string {
  const found = [...text.matchAll(TEMPLATE)];
  const names = found.map((m) => envNameFor(m[1]));
  const rewrite = quotedRewrite(text.trim(), names);
  const env = [...new Set(found.map((m, i) => `${names[i]}: "${m[0]}"`))].join(', ');
  return `an expression may not be pasted into shell text (it would be run as code); pass it through env instead: run: ${rewrite}  env: { ${env} }`;
}

/**
 * `text` with each ${{ }} replaced by its variable, quoted as the shell
 * needs where it stands: `$NAME` inside double quotes (they already quote
 * it), `"$NAME"` outside quotes, and `'"$NAME"'` inside single quotes (which
 * would keep it from expanding); `${NAME}` when a name character follows.
 */
export function quotedRewrite(text: string, names: readonly string[]): string {
  let out = '';
  let quote: '' | "'" | '"' = '';
  let n = 0;
  const at = new RegExp(TEMPLATE.source, 'y');
  for (let i = 0; i < text.length; ) {
    at.lastIndex = i;
    const hit = at.exec(text);
    if (hit) {
      const name = names[n++] ?? 'VALUE';
      const next = text[i + hit[0].length] ?? '';
      const v = /[A-Za-z0-9_]/.test(next) ? `\${${name}}` : `$${name}`;
      out += quote === '"' ? v : quote === "'" ? `'"${v}"'` : `"${v}"`;
      i += hit[0].length;
      continue;
    }
    const c = text[i];
    if (c === '\\' && quote !== "'") {
      out += text.slice(i, i + 2);
      i += 2;
      continue;
    }
    if (c === '"' || c === "'") quote = quote === c ? '' : quote || c;
    out += c;
    i++;
  }
  // A single-quoted string that now ends or starts right at the variable leaves an empty '' behind.
  return out.replace(/''(?=")|(?<=")''/g, '');
}

function envNameFor(expr: string): string {
  const last = expr.trim().split(/[.[\]"']+/).filter(Boolean).pop() ?? 'VALUE';
  return last.replace(/[^A-Za-z0-9]+/g, '_').toUpperCase() || 'VALUE';
}
