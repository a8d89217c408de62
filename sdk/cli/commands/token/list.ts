import type { Command } from 'commander';
import { caOption, serverOption, tokenOption, withClient } from '../../context.js';
import { examples } from '../../help.js';
import { listOutputOption, printList } from '../../output.js';
import { tokensTable } from '../../render/access.js';

/** `drover token list`: every token, without its secret. */
export function register(group: Command): void {
  group
    .command('list')
    .alias('ls')
    .summary('list API and enrollment tokens')
    .description('List every token: id, kind, role, whether it is valid, when it expires, enrollments used. Secrets are never shown again. Needs the admin role.')
    .addOption(listOutputOption())
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caOption())
    .addHelpText('after', examples('drover token list', 'drover token list -o wide    # adds when each was created', 'drover token list -o json'))
    .action(async (_opts: unknown, cmd: Command) => {
      const tokens = await withClient(cmd, (client) => client.access.listTokens());
      printList(cmd, tokens, (view) => tokensTable(tokens, view));
    });
}
