import type { Command } from 'commander';
import { examples } from '../help.js';
import { caOption, serverOption, tokenOption, withClient } from '../context.js';

/** `drover cancel RUN`: stop a run. */
export function register(program: Command): void {
  program
    .command('cancel')
    .summary('cancel a run')
    .description('Cancel a run: running steps are stopped, pending ones never start, finally steps still run.')
    .argument('<run>', 'run id')
    .option('--reason <text>', 'why, recorded on the run')
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover cancel r-7f3a2c',
        'drover cancel r-7f3a2c --reason "wrong username"',
      ),
    )
    .action(async (id: string, opts: { reason?: string }, cmd: Command) => {
      const run = await withClient(cmd, (client) => client.runs.cancel(id, opts.reason));
      process.stdout.write(`run ${run.id} ${run.status === 'cancelled' ? 'cancelled' : `cancelling (${run.status})`}\n`);
    });
}
