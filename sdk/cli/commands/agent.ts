import type { Command } from 'commander';
import { examples } from '../help.js';
import { runEntry } from '../passthrough.js';
import * as credentials from './agent/credentials.js';
import * as drain from './agent/drain.js';
import * as install from './agent/install.js';
import * as uninstall from './agent/uninstall.js';

const SUBCOMMANDS = `
Install on other hosts over SSH:
  drover agent install user@host[:port] --server ADDR ...   (drover agent install --help)
  drover agent uninstall user@host[:port] ...                (drover agent uninstall --help)

Manage a running agent:
  drover agent drain NAME [--undo]                           (drover agent drain --help)

Identity (admin):
  drover agent list-credentials                              certificates and pending enrollments
  drover agent approve NAME                                  issue a pending enrollment's certificate
  drover agent revoke NAME                                   close its link, refuse its certificates
`;

/** `drover agent`: an agent, with every flag passed through; `install` and `uninstall` put agents on hosts over SSH. */
export function register(program: Command): void {
  const agent = program
    .command('agent')
    .summary('run an agent, or install agents on hosts over SSH')
    .description(
      'Run an agent in the foreground. Every argument is passed to it unchanged; `drover agent --help` prints its own flags (--server, --name, --label, --state-dir, --log-level). ' +
        '`drover agent install` and `drover agent uninstall` manage agents on other hosts over SSH.',
    )
    .argument('[args...]', 'agent flags')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .passThroughOptions()
    .addHelpText(
      'after',
      examples(
        'drover agent --server 10.0.0.5:7400 --name db-1 --label role=db --token "$ENROLL_TOKEN"   # first start: enrolls',
        'drover agent --help',
        'drover agent install root@10.0.0.5 --server 10.0.0.1:7400 --label role=web',
      ),
    )
    .action(async (args: string[]) => {
      // The agent prints its own help and exits: the CLI's subcommands follow it.
      if (args[0] === '--help' || args[0] === '-h') process.once('exit', () => process.stdout.write(SUBCOMMANDS));
      await runEntry('agent', args);
    });
  install.register(agent);
  uninstall.register(agent);
  drain.register(agent);
  credentials.register(agent);
}
