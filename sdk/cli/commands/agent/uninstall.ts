import type { Command } from 'commander';
import { uninstallAgent } from '../../../install/index.js';
import { examples } from '../../help.js';
import { addHostOptions, hostOptions, runHosts, type HostsFlags } from './hosts.js';

interface UninstallFlags extends HostsFlags {
  purge?: boolean;
}

/** `drover agent uninstall`: remove what `drover agent install` added. */
export function register(agent: Command): void {
  const cmd = agent
    .command('uninstall')
    .summary('remove agents from hosts over SSH')
    .description(
      'Stop the agent and remove what `drover agent install` added: the systemd unit or supervisor, the binary, the config and the install record. ' +
        'The state dir, the log and the service user stay unless --purge. Use the same --prefix as the install.',
    )
    .argument('[targets...]', 'user@host[:port] (or use --inventory)')
    // `drover agent` passes everything through to the agent; its subcommands parse their own flags.
    .helpOption('-h, --help', 'display help for command')
    .allowUnknownOption(false)
    .option('--purge', 'also remove the state dir, the log and the service user install created');
  addHostOptions(cmd)
    .addHelpText(
      'after',
      examples(
        'drover agent uninstall root@10.0.0.5 -i ~/.ssh/id_ed25519',
        'drover agent uninstall --inventory hosts.yaml --purge',
        'drover agent uninstall root@10.0.0.5 --dry-run',
      ),
    )
    .action(async (targets: string[], flags: UninstallFlags) => {
      const hosts = hostOptions(targets, flags);
      await runHosts(hosts, flags, (opts, events) => uninstallAgent(opts, { purge: flags.purge ?? false }, events));
    });
}
