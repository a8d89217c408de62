import type { Command } from 'commander';
import { caOption, serverOption, tokenOption, withClient } from '../../context.js';
import { formatIn } from '../../format.js';
import { examples } from '../../help.js';

/** `drover schedule resume NAME`. */
export function register(group: Command): void {
  group
    .command('resume')
    .summary('fire a paused schedule again, from now on')
    .description("Resume a paused cron schedule: it fires again from its next fire time on. Fires it missed while paused are not caught up, whatever its catchup. Needs the operator role; audited.")
    .argument('<name>', 'the schedule (drover schedules lists them)')
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText('after', examples('drover schedule resume nightly-backup', 'drover schedules'))
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const s = await withClient(cmd, (client) => client.schedules.resume(name));
      const next = s.nextFireAt ? `${s.nextFireAt.toISOString()} (${formatIn(s.nextFireAt.getTime())})` : 'none';
      process.stdout.write(`schedule ${s.name} (${s.workflow}, ${s.cron} ${s.timezone}) resumed: next fire ${next}\n`);
    });
}
