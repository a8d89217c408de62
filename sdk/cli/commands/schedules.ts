import type { Command } from 'commander';
import { caOption, serverOption, tokenOption, withClient } from '../context.js';
import { examples } from '../help.js';
import { listOutputOption, printList } from '../output.js';
import { schedulesTable } from '../render/schedules.js';

/** `drover schedules`: the cron schedules of registered workflows and their next fires. */
export function register(program: Command): void {
  program
    .command('schedules')
    .summary('list cron schedules and their next fire times')
    .description(
      "List the cron schedules that registered workflows declare (`triggers: [{ cron: … }]`): the workflow version each fire runs, the cron and its time zone, when it fires next, when it last fired and the run that started (or why none did: RUN_SKIPPED under concurrency: skip, no matching agent, ...), and whether it is paused. See docs/schedules.md.",
    )
    .option('--workflow <name>', "only this workflow's schedules")
    .addOption(listOutputOption())
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover schedules',
        'drover schedules --workflow nightly-backup',
        'drover schedules -o wide        # adds the next fire in its time zone, catchup, params and the last message',
        'drover schedules -o json',
      ),
    )
    .action(async (opts: { workflow?: string }, cmd: Command) => {
      const schedules = await withClient(cmd, (client) => client.schedules.list({ workflow: opts.workflow }));
      printList(cmd, schedules, (view) => schedulesTable(schedules, view));
    });
}
