/**
 * Summarises V8 CPU profiles (`npm run bench -- --profile` writes one per
 * control plane): the functions with the most self time, and the most
 * inclusive time, as text.
 *
 *   npx tsx scripts/bench/profile-summary.ts bench/profiles/fleet-nats-10000.cpuprofile [--top 25] [--from 10] [--to 70]
 *
 * --from/--to keep the samples between those seconds of the profile (e.g. to
 * leave out start-up and connecting).
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from './procs.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' }, from: { type: 'string', default: '0' }, to: { type: 'string', default: 'Infinity' } } });
const top = Number(values.top);

function label(n: ProfileNode): string {
  const f = n.callFrame;
  const url = f.url.startsWith('file://') ? relative(ROOT, new URL(f.url).pathname) : f.url;
  return `${f.functionName || '(anonymous)'} ${url ? `${url}:${f.lineNumber + 1}` : ''}`.trim();
}

for (const file of positionals) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Time per sample: the delta to the next sample.
  const selfUs = new Map<number, number>();
  const from = Number(values.from) * 1e6;
  const to = Number(values.to) * 1e6;
  let at = 0;
  p.samples.forEach((id, i) => {
    at += p.timeDeltas[i] ?? 0;
    if (at >= from && at <= to) selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i + 1] ?? 0));
  });
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    total += us;
    if (n.callFrame.functionName === '(idle)') idle += us;
    self.set(label(n), (self.get(label(n)) ?? 0) + us);
    // Inclusive: every distinct frame on the stack gets the sample once.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const l = label(byId.get(cur)!);
      if (seen.has(l)) continue;
      seen.add(l);
      incl.set(l, (incl.get(l) ?? 0) + us);
    }
  }
  const busy = total - idle;
  const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(7)} ms ${((100 * us) / Math.max(busy, 1)).toFixed(1).padStart(5)}%`;
  process.stdout.write(`\n${file}: ${(total / 1e6).toFixed(1)} s profiled, ${(busy / 1e6).toFixed(2)} s busy (percentages of busy time)\n`);
  process.stdout.write(`\nself time:\n`);
  for (const [l, us] of [...self].filter(([l]) => !l.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${ms(us)}  ${l}\n`);
  process.stdout.write(`\ninclusive time:\n`);
  for (const [l, us] of [...incl].filter(([l]) => !/^\((idle|root|program)\)/.test(l)).sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${ms(us)}  ${l}\n`);
}
