/** `drover agent approve|revoke|list-credentials`: agent identities. */
import type { Command, Option } from 'commander';
import { caOption, outputOption, printJson, serverOption, tokenOption, withClient } from '../../context.js';
import { examples } from '../../help.js';
import { listOutputOption, printList } from '../../output.js';
import { credentialsTable } from '../../render/access.js';

function withApi(cmd: Command, output: Option = outputOption()): Command {
  return cmd.addOption(output).addOption(serverOption()).addOption(tokenOption()).addOption(caOption()).helpOption('-h, --help', 'display help for command');
}

export function register(agent: Command): void {
  withApi(
    agent
      .command('approve')
      .summary('issue the certificate of an enrollment waiting for approval')
      .description('With `drover server --enroll-approve`, an agent that enrolls waits until an admin approves it. This issues its certificate; the agent connects within seconds.')
      .argument('<name>', 'agent name (see `drover agent list-credentials`)'),
  )
    .addHelpText('after', examples('drover agent list-credentials', 'drover agent approve web-1'))
    .action(async (name: string, opts: { output: string }, cmd: Command) => {
      const c = await withClient(cmd, (client) => client.access.approveAgent(name));
      if (opts.output === 'json') return printJson(c);
      process.stdout.write(`agent ${c.name} approved: certificate ${c.serial} issued\n`);
    });

  withApi(
    agent
      .command('revoke')
      .summary('cut an agent off: close its link, refuse its certificates')
      .description(
        "Revoke an agent's identity: its link is closed at once, its certificates are refused from then on, and its running steps follow their workflow's onAgentLost policy. The name can be enrolled again afterwards (a reinstalled host).",
      )
      .argument('<name>', 'agent name'),
  )
    .addHelpText('after', examples('drover agent revoke web-1'))
    .action(async (name: string, opts: { output: string }, cmd: Command) => {
      const c = await withClient(cmd, (client) => client.access.revokeAgent(name));
      if (opts.output === 'json') return printJson(c);
      process.stdout.write(`agent ${c.name} revoked: its link is closed and its certificates are refused\n`);
    });

  withApi(
    agent
      .command('list-credentials')
      .summary('agent certificates and enrollments waiting for approval')
      .description('Every agent certificate the control plane issued (active, expired, revoked) and every enrollment waiting for `drover agent approve`.'),
    listOutputOption(),
  )
    .addHelpText('after', examples('drover agent list-credentials', 'drover agent list-credentials -o wide   # adds whole serials, requested and issued times', 'drover agent list-credentials -o json'))
    .action(async (_opts: unknown, cmd: Command) => {
      const creds = await withClient(cmd, (client) => client.access.listAgentCredentials());
      printList(cmd, creds, (view) => credentialsTable(creds, view));
    });
}
