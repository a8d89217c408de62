import { type Command } from 'commander';
import { examples } from '../help.js';
import { parseParamArgs } from '../../params.js';
import type { Agent } from '../../types.js';
import { caOption, serverOption, tokenOption, withClient } from '../context.js';
import { collectParam } from '../options.js';
import { captureList, listOutputOption, printList } from '../output.js';
import { fleetTable } from '../render/fleet.js';
import { watch } from '../watch.js';

/** `drover fleet`: the agents and their health. */
export function register(program: Command): void {
  program
    .command('fleet')
    .summary('list agents')
    .description(
      'List every agent the control plane knows: state, labels, resource use and last contact. ' +
        'With --watch, the table stays on screen and changes as agents connect, report and go (Ctrl-C to stop); ' +
        'when stdout is not a terminal, each new table is printed after a blank line.',
    )
    .option('-l, --label <key=value>', 'only agents with this label (repeatable)', collectParam)
    .option('-w, --watch', 'keep the table up to date until Ctrl-C')
    .addOption(listOutputOption())
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover fleet',
        'drover fleet -l role=directory -l site=hq',
        'drover fleet --watch',
        'drover fleet -o wide               # adds peer address, agent version, connected for',
        'drover fleet -o json',
      ),
    )
    .action(async (opts: { label?: string[]; watch?: boolean }, cmd: Command) => {
      const labels = Object.fromEntries(Object.entries(parseParamArgs(opts.label ?? [])).map(([k, v]) => [k, String(v)]));
      const matches = (a: Agent) => Object.entries(labels).every(([k, v]) => a.labels[k] === v);
      await withClient(cmd, async (client) => {
        if (!opts.watch) {
          const agents = await client.fleet.list({ labels });
          return printList(cmd, agents, (view) => fleetTable(agents, view));
        }
        const agents = new Map<string, Agent>();
        const sorted = () => [...agents.values()].filter(matches).sort((a, b) => a.name.localeCompare(b.name));
        const initial = await client.fleet.list();
        await watch(client.fleet.watch(), (a) => agents.set(a.name, a), () => captureList(cmd, sorted(), (view) => fleetTable(sorted(), view)), initial);
      });
    });
}
