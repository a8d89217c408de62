import { Option, type Command } from 'commander';
import { examples } from '../help.js';
import { RUN_STATUS_VALUES } from '../../convert.js';
import type { Run, RunStatus } from '../../types.js';
import { caOption, serverOption, tokenOption, withClient } from '../context.js';
import { positiveInt } from '../options.js';
import { captureList, listOutputOption, printList } from '../output.js';
import { runsTable } from '../render/runs.js';
import { watch } from '../watch.js';

/** `drover runs`: recent runs. */
export function register(program: Command): void {
  program
    .command('runs')
    .summary('list recent runs')
    .description(
      'List recent runs, newest first: status, how many steps succeeded of how many, the params a run was given (secret ones show as "(secret)"), when it started and how long it took. ' +
        'With --watch, the list stays on screen and changes as runs start, move and end (Ctrl-C to stop); when stdout is not a terminal, each new table is printed after a blank line.',
    )
    .option('--limit <n>', 'at most this many runs', positiveInt, 20)
    .option('--workflow <name>', 'only runs of this workflow')
    .addOption(new Option('--status <status>', 'only runs with this status').choices(RUN_STATUS_VALUES))
    .option('-w, --watch', 'keep the list up to date until Ctrl-C')
    .addOption(listOutputOption())
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover runs',
        'drover runs --status failed --limit 5',
        'drover runs --watch',
        'drover runs --status running --watch',
        'drover runs -o wide                 # adds workflow version, plan hash, creation time',
        'drover runs --workflow onboard-employee -o json',
      ),
    )
    .action(async (opts: { limit: number; workflow?: string; status?: RunStatus; watch?: boolean }, cmd: Command) => {
      const filter = { limit: opts.limit, workflow: opts.workflow, status: opts.status };
      await withClient(cmd, async (client) => {
        if (!opts.watch) {
          const runs = await client.runs.list(filter);
          return printList(cmd, runs, (view) => runsTable(runs, view));
        }
        const runs = new Map<string, Run>();
        const newest = () =>
          [...runs.values()].sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1)).slice(0, opts.limit);
        const apply = (r: Run) => {
          if (opts.status && r.status !== opts.status) runs.delete(r.id);
          else runs.set(r.id, r);
        };
        const initial = await client.runs.list(filter);
        await watch(
          client.runs.watch(filter),
          apply,
          () => {
            const shown = newest();
            return captureList(cmd, shown, (view) => runsTable(shown, view));
          },
          initial,
        );
      });
    });
}
