import { Option, type Command } from 'commander';
import { examples } from '../help.js';
import { RUN_STATUS_VALUES } from '../../convert.js';
import type { RunStatus } from '../../types.js';
import { outputOption, printJson, caOption, serverOption, tokenOption, withClient } from '../context.js';
import { positiveInt } from '../options.js';
import { runsTable } from '../render/runs.js';

/** `drover runs`: recent runs. */
export function register(program: Command): void {
  program
    .command('runs')
    .summary('list recent runs')
    .description('List recent runs, newest first.')
    .option('--limit <n>', 'at most this many runs', positiveInt, 20)
    .option('--workflow <name>', 'only runs of this workflow')
    .addOption(new Option('--status <status>', 'only runs with this status').choices(RUN_STATUS_VALUES))
    .addOption(outputOption())
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover runs',
        'drover runs --status failed --limit 5',
        'drover runs --workflow onboard-employee -o json',
      ),
    )
    .action(async (opts: { limit: number; workflow?: string; status?: RunStatus; output: string }, cmd: Command) => {
      const runs = await withClient(cmd, (client) => client.runs.list({ limit: opts.limit, workflow: opts.workflow, status: opts.status }));
      if (opts.output === 'json') printJson(runs);
      else process.stdout.write(runsTable(runs));
    });
}
