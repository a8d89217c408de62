import type { Command } from 'commander';
import { caOption, serverOption, tokenOption, withClient } from '../../context.js';
import { examples } from '../../help.js';
import { listOutputOption, printList } from '../../output.js';
import { workflowsTable } from '../../render/workflows.js';

/** `drover workflow list`: registered workflows. */
export function register(group: Command): void {
  group
    .command('list')
    .alias('ls')
    .summary('list registered workflows')
    .description('List every registered workflow by name: its latest version, how many versions exist, when the latest was stored, and its description.')
    .addOption(listOutputOption())
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText('after', examples('drover workflow list', 'drover workflow list -o wide    # adds each latest version\'s hash', 'drover workflow list -o json'))
    .action(async (_opts: unknown, cmd: Command) => {
      const workflows = await withClient(cmd, (client) => client.workflows.list());
      printList(cmd, workflows, (view) => workflowsTable(workflows, view));
    });
}
