import type { Command } from 'commander';
import { InvalidInputError } from '../../../errors.js';
import { parseLabelArgs } from '../../../install/index.js';
import { caOption, printJson, serverOption, tokenOption, withClient } from '../../context.js';
import { examples } from '../../help.js';
import { collect, durationMs as duration, positiveInt } from '../../options.js';

interface CreateFlags {
  role?: string;
  enroll?: boolean;
  ttl?: number;
  uses?: number;
  label?: string[];
  namePattern?: string;
  description?: string;
  name?: string;
  output?: string;
}

/** `drover token create`: an API token with a role, or an enrollment token. Prints the token alone. */
export function register(group: Command): void {
  group
    .command('create')
    .summary('make an API token (--role) or an enrollment token (--enroll)')
    .description(
      'Make a token and print it on stdout, nothing else: it is shown this once (only its hash is stored). ' +
        'API tokens carry a role: viewer (read fleet, runs, logs), operator (launch, cancel, drain), admin (tokens, agents, devices, registry). ' +
        'Enrollment tokens let agents enroll once (`drover agent --token …`); they carry the CA\'s hash, so a new agent can check the control plane. Needs the admin role.',
    )
    .option('--role <role>', 'viewer, operator or admin (API token)')
    .option('--enroll', 'an enrollment token for agents instead')
    .option('--ttl <duration>', 'lifetime (default: 1h for enrollment tokens, none for API tokens)', duration)
    .option('--uses <n>', 'enrollment: how many agents may enroll with it (default: any number until it expires)', positiveInt)
    .option('-l, --label <key=value>', 'enrollment: a label every agent enrolled with it carries, whatever it says (repeatable)', collect)
    .option('--name-pattern <glob>', 'enrollment: agent names it is good for, e.g. web-*')
    .option('--description <text>', 'what it is for, shown by `drover token list`')
    .option('--name <name>', "API tokens: its holder's name (e.g. alice), unique; approval steps may name it among their approvers")
    .option('-o, --output <format>', 'token (default) or json')
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover token create --role viewer --description grafana',
        'drover token create --role viewer --name alice --description "Alice Ng, release manager"',
        'drover token create --role operator --ttl 7d',
        'drover token create --enroll --ttl 1h --uses 1 --name-pattern web-1',
        'drover agent --server cp.example:7400 --name web-1 --token "$(drover token create --enroll --uses 1)"',
      ),
    )
    .action(async (flags: CreateFlags, cmd: Command) => {
      if (!flags.enroll === !flags.role) throw new InvalidInputError(flags.enroll ? '--enroll and --role do not go together' : 'say what kind of token: --role viewer|operator|admin, or --enroll', { hint: 'drover token create --role viewer' });
      if (flags.enroll && flags.name) throw new InvalidInputError('--name is for API tokens (an agent is named by `drover agent --name`)', { hint: 'drop --name, or use --role instead of --enroll' });
      if (!flags.enroll && (flags.uses || flags.label?.length || flags.namePattern)) {
        throw new InvalidInputError('--uses, --label and --name-pattern are for enrollment tokens', { hint: 'add --enroll, or drop them' });
      }
      const made = await withClient(cmd, (client) =>
        flags.enroll
          ? client.access.createEnrollToken({ ttlMs: flags.ttl, uses: flags.uses, labels: parseLabelArgs(flags.label ?? []), namePattern: flags.namePattern, description: flags.description })
          : client.access.createToken(flags.role as 'viewer', { ttlMs: flags.ttl, description: flags.description, name: flags.name }),
      );
      if (flags.output === 'json') return printJson(made);
      process.stdout.write(`${made.token}\n`);
    });
}
