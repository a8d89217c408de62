import type { Command } from 'commander';
import { examples } from '../help.js';
import { runEntry } from '../passthrough.js';

/** `drover agent`: an agent, with every flag passed through. */
export function register(program: Command): void {
  program
    .command('agent')
    .summary('run an agent')
    .description(
      'Run an agent in the foreground. Every argument is passed to it unchanged; `drover agent --help` prints its own flags (--server, --name, --label, --state-dir, --log-level).',
    )
    .argument('[args...]', 'agent flags')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .passThroughOptions()
    .addHelpText(
      'after',
      examples(
        'drover agent --server 10.0.0.5:7400 --name db-1 --label role=db --label site=hq',
        'drover agent --help',
      ),
    )
    .action(async (args: string[]) => {
      process.exitCode = await runEntry('agent', args);
    });
}
