import type { Command } from 'commander';
import { parseLabelArgs } from '../../../install/index.js';
import { caOption, serverOption, tokenOption, withClient } from '../../context.js';
import { examples } from '../../help.js';
import { listOutputOption, printList } from '../../output.js';
import { collect } from '../../options.js';
import { devicesTable } from '../../render/devices.js';

/** `drover device list`: the device inventory. */
export function register(group: Command): void {
  group
    .command('list')
    .alias('ls')
    .summary('list registered devices')
    .description('List the device inventory: where each device is, its user and credential name, its network and labels, and the agents that proxy for its network now.')
    .option('-l, --label <key=value>', 'only devices with this label (repeatable)', collect)
    .addOption(listOutputOption())
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText('after', examples('drover device list', 'drover device list -l role=access', 'drover device list -o wide', 'drover device list -o yaml'))
    .action(async (opts: { label?: string[] }, cmd: Command) => {
      const labels = parseLabelArgs(opts.label ?? []);
      const devices = await withClient(cmd, (client) => client.devices.list({ labels }));
      printList(cmd, devices, (view) => devicesTable(devices, view));
    });
}
