import type { Command } from 'commander';
import { examples } from '../help.js';
import { runEntry } from '../passthrough.js';

/** `drover server`: the control plane, with every flag passed through. */
export function register(program: Command): void {
  program
    .command('server')
    .summary('run the control plane')
    .description(
      'Run the control plane in the foreground. Every argument is passed to it unchanged; `drover server --help` prints its own flags (--listen, --data-dir, --log-level, ...).',
    )
    .argument('[args...]', 'control-plane flags')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .passThroughOptions()
    .addHelpText(
      'after',
      examples(
        'drover server --listen 127.0.0.1:7400 --data-dir /var/lib/drover',
        'drover server --help',
      ),
    )
    .action(async (args: string[]) => {
      await runEntry('server', args);
    });
}
