import type { Command } from 'commander';
import { examples } from '../../help.js';
import { outputOption, printJson, caOption, serverOption, tokenOption, withClient } from '../../context.js';

/** `drover agent drain NAME`: stop placing new work on an agent; `--undo` ends it. */
export function register(agent: Command): void {
  agent
    .command('drain')
    .summary('stop new work for an agent; what it runs finishes')
    .description(
      'Drain an agent: the scheduler places no new steps on it, while the steps it already runs finish. ' +
        '`drover fleet` shows it as "(draining)". Use --undo to take new work again.',
    )
    .argument('<name>', 'agent name (see `drover fleet`)')
    .option('--undo', 'end draining: the agent takes new work again')
    .addOption(outputOption())
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .helpOption('-h, --help', 'display help for command')
    .addHelpText('after', examples('drover agent drain web-3', 'drover agent drain web-3 --undo'))
    .action(async (name: string, opts: { undo?: boolean; output: string }, cmd: Command) => {
      const agentInfo = await withClient(cmd, (client) => client.fleet.drain(name, !opts.undo));
      if (opts.output === 'json') return printJson(agentInfo);
      const running = agentInfo.runningSteps ? `; ${agentInfo.runningSteps} step(s) still running there will finish` : '';
      process.stdout.write(agentInfo.draining ? `agent ${name} is draining: no new work will be placed on it${running}\n` : `agent ${name} takes new work again\n`);
    });
}
