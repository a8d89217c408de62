import type { Command } from 'commander';
import { parseLabelArgs } from '../../../install/index.js';
import { outputOption, printJson, caOption, serverOption, tokenOption, withClient } from '../../context.js';
import { examples } from '../../help.js';
import { collect, positiveInt } from '../../options.js';
import { deviceAddedLine } from '../../render/devices.js';

interface Flags {
  host: string;
  port?: number;
  user: string;
  credential: string;
  network?: string;
  label?: string[];
  maxSessions?: number;
  replace?: boolean;
  output: string;
}

/** `drover device add NAME --host H --user U --credential REF ...`: register a network device. */
export function register(group: Command): void {
  group
    .command('add')
    .summary('register a network device')
    .description(
      'Register a network device (switch, router, appliance) that ssh steps can drive. The control plane stores where it is and the NAME of a credential; ' +
        'the secret itself stays on the proxy agents (drover agent ... --credential NAME=FILE). Steps to the device run on an agent labelled proxy=<network>.',
    )
    .argument('<name>', 'device name: letters, digits, ".", "-", "_"')
    .requiredOption('--host <host>', 'address the proxy agent dials (name or IP)')
    .option('--port <port>', 'SSH port (default: 22)', positiveInt)
    .requiredOption('--user <user>', 'login user on the device')
    .requiredOption('--credential <name>', 'credential reference the proxy agent resolves locally (never a secret)')
    .option('--network <network>', 'the network the device is in: agents labelled proxy=<network> reach it (default: default)')
    .option('-l, --label <key=value>', 'device label for target selection (repeatable)', collect)
    .option('--max-sessions <n>', 'steps to this device at once on its proxy agent (default: 1)', positiveInt)
    .option('--replace', 'replace a device of the same name')
    .addOption(outputOption())
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover device add core-1 --host 10.0.0.2 --user admin --credential lab-admin --network lab --label role=core',
        'drover device add access-7 --host sw7.lab.example --port 2222 --user netops --credential netops --label role=access --max-sessions 2',
        'drover device add core-1 --host 10.0.0.3 --user admin --credential lab-admin --network lab --replace',
      ),
    )
    .action(async (name: string, opts: Flags, cmd: Command) => {
      const labels = parseLabelArgs(opts.label ?? []);
      const device = await withClient(cmd, (client) =>
        client.devices.add(
          { name, host: opts.host, port: opts.port, user: opts.user, credential: opts.credential, network: opts.network, labels, maxSessions: opts.maxSessions },
          { replace: opts.replace },
        ),
      );
      if (opts.output === 'json') return printJson(device);
      process.stdout.write(deviceAddedLine(device, !!opts.replace));
    });
}
