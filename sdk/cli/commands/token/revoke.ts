import type { Command } from 'commander';
import { caOption, outputOption, printJson, serverOption, tokenOption, withClient } from '../../context.js';
import { examples } from '../../help.js';

/** `drover token revoke ID`: the token is refused from now on. */
export function register(group: Command): void {
  group
    .command('revoke')
    .summary('revoke a token: it is refused from now on')
    .description('Revoke a token by its id (see `drover token list`). Calls with it are refused at once; agents already enrolled with an enrollment token keep their certificates (revoke those with `drover agent revoke NAME`). Needs the admin role.')
    .argument('<id>', 'token id (see `drover token list`)')
    .addOption(outputOption())
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caOption())
    .addHelpText('after', examples('drover token revoke 3f2a9c1d0b7e'))
    .action(async (id: string, opts: { output: string }, cmd: Command) => {
      const t = await withClient(cmd, (client) => client.access.revokeToken(id));
      if (opts.output === 'json') return printJson(t);
      process.stdout.write(`token ${t.id} revoked\n`);
    });
}
