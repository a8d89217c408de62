import type { Command } from 'commander';
import { caOption, serverOption, tokenOption, withClient } from '../../context.js';
import { formatAgo } from '../../format.js';
import { examples } from '../../help.js';
import { listOutputOption, printList } from '../../output.js';
import { renderTable } from '../../table.js';

/** `drover secret list`: names and dates, never values. */
export function register(group: Command): void {
  group
    .command('list')
    .alias('ls')
    .summary('list secrets (names only)')
    .description('List every stored secret: name, version, when it was last set and by which token. Values are never shown. Needs the operator role.')
    .addOption(listOutputOption())
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caOption())
    .addHelpText('after', examples('drover secret list', 'drover secret list -o yaml'))
    .action(async (_opts: unknown, cmd: Command) => {
      const secrets = await withClient(cmd, (client) => client.secrets.list());
      printList(cmd, secrets, ({ now }) =>
        secrets.length
          ? renderTable(['NAME', 'VERSION', 'UPDATED', 'BY', 'CREATED'], secrets.map((s) => [s.name, s.version, formatAgo(s.updatedAt.getTime(), now), s.updatedBy || '-', formatAgo(s.createdAt.getTime(), now)]))
          : 'no secrets (store one with `drover secret set NAME`)\n',
      );
    });
}
