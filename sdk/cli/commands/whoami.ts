import type { Command } from 'commander';
import { caOption, outputOption, printJson, serverOption, tokenOption, withClient } from '../context.js';
import { examples } from '../help.js';

/** `drover whoami`: the token this CLI uses, and its role. */
export function register(program: Command): void {
  program
    .command('whoami')
    .summary('show the token in use and its role')
    .description('Ask the control plane which token this CLI sends (--token, DROVER_TOKEN, the config file or the drover dev sandbox) and what its role allows.')
    .addOption(outputOption())
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caOption())
    .addHelpText('after', examples('drover whoami', 'DROVER_TOKEN=$(cat viewer.token) drover whoami -o json'))
    .action(async (opts: { output: string }, cmd: Command) => {
      const me = await withClient(cmd, (client) => client.access.whoami());
      if (opts.output === 'json') return printJson(me);
      const expires = me.expiresAt ? `, expires ${me.expiresAt.toISOString()}` : '';
      process.stdout.write(`token ${me.tokenId}${me.name ? ` (${me.name})` : ''}: role ${me.role}${me.description ? ` (${me.description})` : ''}${expires}\n`);
    });
}
