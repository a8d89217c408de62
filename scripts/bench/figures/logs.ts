/**
 * Figure 8: reading a long run's log back. One step on a real agent prints
 * LINES lines (`seq`); then `runs.logs()` (GetLogs) reads them: the time to
 * the first line and to the last, against the same for a one-line run. The
 * control plane serves a log a page at a time (docs/reliability.md, "Reading
 * run logs"), so the first line does not wait for the whole file.
 */
import type { DroverClient, WorkflowDocument } from '../../../sdk/index.js';
import type { BenchContext, FigureResult } from '../context.js';
import { p50, row } from '../report.js';
import type { StepsCluster } from './steps.js';

function printing(name: string, lines: number): WorkflowDocument {
  return { name, steps: [{ id: 'print', target: { agent: 'bench-a' }, run: `seq 1 ${lines}` }] };
}

async function launched(client: DroverClient, doc: WorkflowDocument): Promise<string> {
  const run = await (await client.runs.launch(doc)).wait();
  if (run.status !== 'succeeded') throw new Error(`benchmark run ${run.id} ${run.status}: ${run.message}`);
  return run.id;
}

/** ms to the first line and to the last of `drover logs RUN`, and how many lines came. */
async function readBack(client: DroverClient, runId: string): Promise<{ firstMs: number; allMs: number; lines: number }> {
  const t0 = performance.now();
  let firstMs = Number.NaN;
  let lines = 0;
  for await (const _ of client.logs(runId)) if (lines++ === 0) firstMs = performance.now() - t0;
  return { firstMs, allMs: performance.now() - t0, lines };
}

export async function logsFigure(ctx: BenchContext, cl: StepsCluster): Promise<FigureResult> {
  const lines = ctx.quick ? 20_000 : 200_000;
  const repeats = ctx.quick ? 2 : 5;
  ctx.progress(`figure 8: a run that prints ${lines} lines read back ${repeats} times with logs, against a one-line run`);
  const long = await launched(cl.client, printing('bench-logs-long', lines));
  const short = await launched(cl.client, printing('bench-logs-short', 1));
  const longReads = [];
  const shortReads = [];
  // The first reads warm up (and, after a restart, would build the run's offset index).
  await readBack(cl.client, short);
  await readBack(cl.client, long);
  for (let i = 0; i < repeats; i++) {
    shortReads.push(await readBack(cl.client, short));
    longReads.push(await readBack(cl.client, long));
  }
  for (const r of longReads) if (r.lines !== lines) throw new Error(`logs of run ${long} gave ${r.lines} lines, not ${lines}`);
  const first = p50(longReads.map((r) => r.firstMs));
  const all = p50(longReads.map((r) => r.allMs));
  return {
    rows: [
      row({
        id: 'logs.firstLineMs',
        figure: '8 logs',
        what: `logs of a ${lines.toLocaleString('en-US')}-line run, time to its first line (p50 of ${repeats})`,
        value: first,
        unit: 'ms',
        baseline: { what: 'the same for a 1-line run', value: p50(shortReads.map((r) => r.firstMs)), unit: 'ms' },
      }),
      row({
        id: 'logs.linesPerSecond',
        figure: '8 logs',
        what: `logs of a ${lines.toLocaleString('en-US')}-line run, lines per second to its last (p50 of ${repeats})`,
        value: (lines * 1000) / all,
        unit: 'lines/s',
        baseline: { what: 'reading the 1-line run, per second', value: 1000 / p50(shortReads.map((r) => r.allMs)), unit: 'lines/s' },
      }),
    ],
    details: { lines, repeats, long: longReads, short: shortReads },
  };
}
