import type { Command } from 'commander';
import { examples } from '../help.js';
import { outputOption, printJson, caOption, serverOption, tokenOption, withClient } from '../context.js';
import { runHeader, stepMessages, stepsTable } from '../render/runs.js';

/** `drover status RUN`: one run and its steps. */
export function register(program: Command): void {
  program
    .command('status')
    .summary('show a run and its steps')
    .description('Show a run: its status, params and plan hash, then every step with its agent, attempt, exit code and resource use.')
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
      process.stdout.write(runHeader(run) + '\n' + stepsTable(run.steps) + (messages ? `\nMessages:\n${messages}` : ''));
    });
}
