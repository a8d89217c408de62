import type { Command } from 'commander';
import { caOption, serverOption, tokenOption, withClient } from '../../context.js';
import { examples } from '../../help.js';

/** `drover schedule pause NAME`. */
export function register(group: Command): void {
  group
    .command('pause')
    .summary("stop a schedule's fires until resumed")
    .description("Pause a cron schedule: it starts no runs until `drover schedule resume NAME`. Runs already started go on. The pause is kept across control-plane restarts and new versions of the workflow. Needs the operator role; audited.")
    .argument('<name>', 'the schedule (drover schedules lists them)')
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText('after', examples('drover schedule pause nightly-backup', 'drover schedules'))
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const s = await withClient(cmd, (client) => client.schedules.pause(name));
      process.stdout.write(`schedule ${s.name} (${s.workflow}, ${s.cron} ${s.timezone}) paused: no fires until drover schedule resume ${s.name}\n`);
    });
}
