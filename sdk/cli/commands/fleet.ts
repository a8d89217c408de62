import { type Command } from 'commander';
import { examples } from '../help.js';
import { parseParamArgs } from '../../params.js';
import { outputOption, printJson, caOption, serverOption, tokenOption, withClient } from '../context.js';
import { collectParam } from '../options.js';
import { fleetTable } from '../render/fleet.js';

/** `drover fleet`: the agents and their health. */
export function register(program: Command): void {
  program
    .command('fleet')
    .summary('list agents')
    .description('List every agent the control plane knows: state, labels, resource use and last contact.')
    .option('-l, --label <key=value>', 'only agents with this label (repeatable)', collectParam)
    .addOption(outputOption())
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover fleet',
        'drover fleet -l role=directory -l site=hq',
        'drover fleet -o json',
      ),
    )
    .action(async (opts: { label?: string[]; output: string }, cmd: Command) => {
      const labels = Object.fromEntries(Object.entries(parseParamArgs(opts.label ?? [])).map(([k, v]) => [k, String(v)]));
      const agents = await withClient(cmd, (client) => client.fleet.list({ labels }));
      if (opts.output === 'json') printJson(agents);
      else process.stdout.write(fleetTable(agents));
    });
}
