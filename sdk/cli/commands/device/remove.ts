import type { Command } from 'commander';
import { outputOption, printJson, caOption, serverOption, tokenOption, withClient } from '../../context.js';
import { examples } from '../../help.js';

/** `drover device remove NAME`: take a device out of the inventory. */
export function register(group: Command): void {
  group
    .command('remove')
    .alias('rm')
    .summary('remove a registered device')
    .description('Remove a device from the inventory. Runs already started keep the connection details their plan was compiled with; new runs that name it are refused.')
    .argument('<name>', 'device name (see `drover device list`)')
    .addOption(outputOption())
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText('after', examples('drover device remove core-1'))
    .action(async (name: string, opts: { output: string }, cmd: Command) => {
      const device = await withClient(cmd, (client) => client.devices.remove(name));
      if (opts.output === 'json') return printJson(device);
      process.stdout.write(`device ${device.name} removed\n`);
    });
}
