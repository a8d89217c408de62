import type { Command } from 'commander';
import { caOption, outputOption, printJson, serverOption, tokenOption, withClient } from '../../context.js';
import { examples } from '../../help.js';

/** `drover secret rm NAME`. */
export function register(group: Command): void {
  group
    .command('rm')
    .alias('remove')
    .summary('remove a secret')
    .description('Remove a stored secret. Runs that are under way and still need it fail the steps that use it, naming it. Needs the admin role.')
    .argument('<name>', 'the secret (see `drover secret list`)')
    .addOption(outputOption())
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caOption())
    .addHelpText('after', examples('drover secret rm DB_PASSWORD'))
    .action(async (name: string, opts: { output: string }, cmd: Command) => {
      const info = await withClient(cmd, (client) => client.secrets.remove(name));
      if (opts.output === 'json') return printJson(info);
      process.stdout.write(`secret ${info.name} removed\n`);
    });
}
