import type { FieldChange, WorkflowDiff } from '../../diff.js';

/**
 * `drover workflow diff` as text, after `nomad job plan`: `+` added, `-`
 * removed, `~` changed; the workflow's own fields first, then each step with
 * its fields indented. A multi-line string (a script) shows the lines that
 * differ. Ends with a summary line.
 */
export function diffText(d: WorkflowDiff, file: string): string {
  const against = d.version ? `${d.workflow}@${d.version}` : `${d.workflow} (not registered)`;
  if (d.equal) return `${file}: no changes against ${against}\n`;
  const lines = [`${file} against ${against}:`];
  for (const f of d.fields) lines.push(...fieldLines(f, '  '));
  for (const s of d.steps) {
    const mark = s.change === 'added' ? '+' : s.change === 'removed' ? '-' : '~';
    lines.push(`${mark} step ${s.id}${s.section === 'finally' ? ' (finally)' : ''}${s.change === 'changed' ? '' : ` ${s.change}`}`);
    for (const f of s.fields) lines.push(...fieldLines(f, '    '));
  }
  const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
  const by = (c: string) => d.steps.filter((s) => s.change === c).length;
  const summary = [`${count(by('added'), 'step')} added`, `${by('removed')} removed`, `${by('changed')} changed`];
  if (d.fields.length) summary.push(`${count(d.fields.length, 'workflow field')} changed`);
  lines.push(summary.join(', '));
  return lines.join('\n') + '\n';
}

function fieldLines(f: FieldChange, indent: string): string[] {
  const has = (k: 'before' | 'after') => Object.hasOwn(f, k);
  if (!has('before')) return whole('+', f.path, f.after, indent);
  if (!has('after')) return whole('-', f.path, f.before, indent);
  if (typeof f.before === 'string' && typeof f.after === 'string' && (f.before.includes('\n') || f.after.includes('\n'))) {
    return [`${indent}~ ${f.path}:`, ...lineDiff(f.before, f.after).map((l) => `${indent}    ${l}`)];
  }
  return [`${indent}~ ${f.path}: ${show(f.before)} => ${show(f.after)}`];
}

/** An added or removed field; a multi-line string as its lines. */
function whole(mark: '+' | '-', path: string, v: unknown, indent: string): string[] {
  if (typeof v !== 'string' || !v.includes('\n')) return [`${indent}${mark} ${path}: ${show(v)}`];
  return [`${indent}${mark} ${path}: |`, ...v.replace(/\n$/, '').split('\n').map((l) => `${indent}    ${mark} ${l}`)];
}

function show(v: unknown): string {
  return v === undefined ? '(none)' : JSON.stringify(v);
}

/** The lines of two texts as a diff: `- ` only in the first, `+ ` only in the second, `  ` in both (longest common subsequence). */
function lineDiff(a: string, b: string): string[] {
  const x = a.replace(/\n$/, '').split('\n');
  const y = b.replace(/\n$/, '').split('\n');
  const lcs = Array.from({ length: x.length + 1 }, () => new Array<number>(y.length + 1).fill(0));
  for (let i = x.length - 1; i >= 0; i--) for (let j = y.length - 1; j >= 0; j--) lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length || j < y.length) {
    if (i < x.length && j < y.length && x[i] === y[j]) {
      out.push(`  ${x[i++]}`);
      j++;
    } else if (i < x.length && (j === y.length || lcs[i + 1][j] >= lcs[i][j + 1])) out.push(`- ${x[i++]}`);
    else out.push(`+ ${y[j++]}`);
  }
  return out;
}
