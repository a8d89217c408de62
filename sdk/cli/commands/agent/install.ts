import type { Command } from 'commander';
import { InvalidInputError } from '../../../errors.js';
import { installAgent, parseLabelArgs } from '../../../install/index.js';
import { examples } from '../../help.js';
import { clientOptions } from '../../context.js';
import { collect, positiveInt } from '../../options.js';
import { addHostOptions, hostOptions, runHosts, type HostsFlags } from './hosts.js';

interface InstallFlags extends HostsFlags {
  server?: string;
  api?: string;
  label?: string[];
  name?: string;
  enrollToken?: string;
  binary?: string;
  runAs: string;
  init: 'auto' | 'systemd' | 'supervisor';
  wait: number | false;
}

/** `drover agent install`: put an agent on hosts over SSH. */
export function register(agent: Command): void {
  const cmd = agent
    .command('install')
    .summary('install or upgrade agents on hosts over SSH')
    .description(
      'Install the single-binary agent on hosts over SSH, or upgrade it in place (same name and state). Per host: connect (host keys checked against known_hosts), ' +
        'detect OS, architecture and init system, upload the binary and verify its SHA-256, write the config (0600), create a service user, install a systemd unit ' +
        '(or a supervisor script where systemd is not PID 1), start the agent and wait until it is connected. A failure rolls the host back. ' +
        'sudo -n is used only when the login user is not root. See docs/install.md.',
    )
    .argument('[targets...]', 'user@host[:port] (or use --inventory)')
    // `drover agent` passes everything through to the agent; its subcommands parse their own flags.
    .helpOption('-h, --help', 'display help for command')
    .allowUnknownOption(false)
    .option('--server <host:port>', 'control plane address the agent dials (required for a first install)')
    .option('--api <host:port>', 'control plane address this command checks the fleet at (default: --server)')
    .option('-l, --label <key=value>', 'agent label (repeatable; default on upgrade: keep the installed labels)', collect)
    .option('--name <name>', 'agent name (default: the installed name, else the host name)')
    .option('--enroll-token <token>', "enrollment token written to the agent config (env DROVER_ENROLL_TOKEN; default on a first install: a one-use token for this agent, made with the admin --token)")
    .option('--binary <path>', 'agent binary, or a directory with drover-agent-linux-<arch> (default: dist/ of this package)')
    .option('--run-as <user>', 'account the agent runs as, created when missing; root for none', 'drover-agent')
    .option('--init <kind>', 'auto (systemd when it is PID 1), systemd, or supervisor', 'auto')
    .option('--wait <seconds>', 'how long to wait for the agent to connect', positiveInt, 60)
    .option('--no-wait', 'do not check that the agent connects');
  addHostOptions(cmd)
    .addHelpText(
      'after',
      examples(
        'drover agent install root@10.0.0.5 -i ~/.ssh/id_ed25519 --server 10.0.0.1:7400 -l role=web -l site=ams',
        'drover agent install deploy@db-1.example:2222 --server cp.example:7400 --name db-1 --enroll-token "$ENROLL_TOKEN"',
        'drover agent install --inventory hosts.yaml --server cp.example:7400 --parallel 20',
        'drover agent install root@10.0.0.5 --server 10.0.0.1:7400 --dry-run',
      ),
    )
    .action(async (targets: string[], flags: InstallFlags) => {
      if (!['auto', 'systemd', 'supervisor'].includes(flags.init)) {
        throw new InvalidInputError(`--init "${flags.init}" is not auto, systemd or supervisor`);
      }
      const api = clientOptions(cmd);
      const hosts = hostOptions(targets, flags, {
        server: flags.server,
        api: flags.api,
        ...(flags.label?.length ? { labels: parseLabelArgs(flags.label) } : {}),
        name: flags.name,
        token: flags.enrollToken ?? (process.env.DROVER_ENROLL_TOKEN || undefined),
        credentials: { token: api.token, ca: api.ca },
        binary: flags.binary,
        runAs: flags.runAs,
        init: flags.init,
        waitMs: flags.wait === false ? 0 : flags.wait * 1000,
      });
      await runHosts(hosts, flags, (opts, events) => installAgent(opts, events));
    });
}
