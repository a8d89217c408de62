import type { Command } from 'commander';
import { examples } from '../help.js';
import type { Run, RunEvent } from '../../types.js';
import { caOption, serverOption, tokenOption, withClient } from '../context.js';
import { captureList, listOutputOption, type View } from '../output.js';
import { EXIT } from '../report.js';
import { attemptsTable, runHeader, stepMessages, stepsTable } from '../render/runs.js';
import { approvalLines } from '../render/approvals.js';
import { waitingLines } from '../render/step-cells.js';
import { watch } from '../watch.js';

/** The whole `drover status` view of a run. */
function statusView(run: Run, view: View): string {
  const messages = stepMessages(run.steps);
  const attempts = attemptsTable(run.steps, view);
  const waiting = waitingLines(run.steps);
  const approvals = approvalLines(run);
  return (
    runHeader(run, view) + '\n' + stepsTable(run.steps, view) + (waiting ? `\nWaiting:\n${waiting}` : '') + (approvals ? `\nApprovals:\n${approvals}` : '') + (attempts ? `\nAttempts:\n${attempts}` : '') + (messages ? `\nMessages:\n${messages}` : '')
  );
}

/** A run with one event applied. */
function applyEvent(run: Run | undefined, e: RunEvent): Run | undefined {
  if (e.type === 'run') return e.run;
  if (e.type === 'step' && run) {
    const i = run.steps.findIndex((s) => s.id === e.step.id);
    const steps = i < 0 ? [...run.steps, e.step] : run.steps.map((s, j) => (j === i ? e.step : s));
    return { ...run, steps };
  }
  return run;
}

/** `drover status RUN`: one run and its steps. */
export function register(program: Command): void {
  program
    .command('status')
    .summary('show a run and its steps')
    .description(
      'Show a run: its status, params and plan hash, then every step with its agent (a fan-out or forEach step: how many instances on how many agents), attempt, exit code (none for a step that never ran) and resource use, and why each unfinished step waits (its needs, its agent disconnected or draining, a maxParallel slot, the run queued behind another, a decision: approval steps are listed under Approvals with who may decide, the question, the deadline and the decision). ' +
        'Steps with more than one attempt, or with one that was superseded (its agent was declared lost and the step failed or moved on), ' +
        'list every attempt: its number (for `drover logs --attempt N`), agent, status, times and what became of it. ' +
        'RUN is the run id or a unique prefix of it (at least 4 characters). ' +
        'With --watch, the view stays on screen and changes with the run until it ends; the command then exits 0 if it succeeded, 1 otherwise (Ctrl-C stops watching, exit 0).',
    )
    .argument('<run>', 'run id, or a unique prefix of it')
    .option('-w, --watch', 'keep the view up to date until the run ends')
    .addOption(listOutputOption())
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover status r-261201-101500-7f3a2c1d',
        'drover status r-261201-1015          # a unique prefix is enough',
        'drover status r-261201-1015 --watch  # until the run ends; exits with its outcome',
        'drover status r-261201-1015 -o wide  # adds each step\'s needs',
        'drover status r-261201-1015 -o yaml',
      ),
    )
    .action(async (id: string, opts: { watch?: boolean }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        if (!opts.watch) {
          const run = await client.runs.get(id);
          return void process.stdout.write(captureList(cmd, run, (view) => statusView(run, view)));
        }
        let run: Run | undefined;
        let interrupted = false;
        process.on('SIGINT', () => (interrupted = true));
        await watch(client.runs.watch(id), (e) => (run = applyEvent(run, e)), () => (run ? captureList(cmd, run, (view) => statusView(run!, view)) : ''));
        if (!interrupted && run) process.exitCode = run.status === 'succeeded' ? EXIT.ok : EXIT.failure;
      });
    });
}
