import type { Command } from 'commander';
import { examples } from '../help.js';
import { outputOption, printJson, caOption, serverOption, tokenOption, withClient } from '../context.js';
import { attemptsTable, runHeader, stepMessages, stepsTable } from '../render/runs.js';
import { waitingLines } from '../render/step-cells.js';

/** `drover status RUN`: one run and its steps. */
export function register(program: Command): void {
  program
    .command('status')
    .summary('show a run and its steps')
    .description(
      'Show a run: its status, params and plan hash, then every step with its agent (a fan-out or forEach step: how many instances on how many agents), attempt, exit code (none for a step that never ran) and resource use, and why each unfinished step waits (its needs, its agent disconnected or draining, a maxParallel slot, the run queued behind another). ' +
        'Steps with more than one attempt, or with one that was superseded (its agent was declared lost and the step failed or moved on), ' +
        'list every attempt: its number (for `drover logs --attempt N`), agent, status, times and what became of it.',
    )
    .argument('<run>', 'run id')
    .addOption(outputOption())
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover status r-7f3a2c',
        'drover status r-7f3a2c -o json',
      ),
    )
    .action(async (id: string, opts: { output: string }, cmd: Command) => {
      const run = await withClient(cmd, (client) => client.runs.get(id));
      if (opts.output === 'json') return printJson(run);
      const messages = stepMessages(run.steps);
      const attempts = attemptsTable(run.steps);
      const waiting = waitingLines(run.steps);
      process.stdout.write(
        runHeader(run) + '\n' + stepsTable(run.steps) + (waiting ? `\nWaiting:\n${waiting}` : '') + (attempts ? `\nAttempts:\n${attempts}` : '') + (messages ? `\nMessages:\n${messages}` : ''),
      );
    });
}
