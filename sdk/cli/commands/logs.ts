import type { Command } from 'commander';
import { examples } from '../help.js';
import { caOption, serverOption, tokenOption, withClient } from '../context.js';
import { EXIT } from '../report.js';

/** `drover logs RUN [STEP]`: what steps printed. */
export function register(program: Command): void {
  program
    .command('logs')
    .summary('print the logs of a run')
    .description(
      'Print what the steps of a run wrote, oldest first. Without STEP, each line is prefixed with its step id. Lines a step wrote to stderr go to stderr.',
    )
    .argument('<run>', 'run id')
    .argument('[step]', 'only this step')
    .option('-f, --follow', 'keep printing new lines until the run ends')
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover logs r-7f3a2c',
        'drover logs r-7f3a2c create-account',
        'drover logs r-7f3a2c --follow',
      ),
    )
    .action(async (runId: string, step: string | undefined, opts: { follow?: boolean }, cmd: Command) => {
      process.once('SIGINT', () => process.exit(EXIT.interrupted));
      await withClient(cmd, async (client) => {
        for await (const line of client.logs(runId, step, { follow: opts.follow })) {
          const out = `${step ? '' : `${line.stepId} | `}${line.text}\n`;
          (line.stream === 'stderr' ? process.stderr : process.stdout).write(out);
        }
      });
    });
}
