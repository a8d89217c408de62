import type { Command } from 'commander';
import { NoMatchingAgentError } from '../../errors.js';
import { parseParamArgs } from '../../params.js';
import { outputOption, printJson, caOption, serverOption, tokenOption, withClient } from '../context.js';
import { examples } from '../help.js';
import { collectParam } from '../options.js';
import { cli } from '../invocation.js';
import { planText } from '../render/plan.js';
import { shellCommand } from '../shell.js';

/** `drover plan FILE|NAME[@VERSION]`: what a run would do now. */
export function register(program: Command): void {
  program
    .command('plan')
    .summary('preview what a run would do, without running it')
    .description(
      'Compile a workflow with params against the fleet as it is now and print the plan: the waves of steps that can run together, each step\'s kind, target and strategy, the agents it matches now with their state, the agent it would run on or the instances a fan-out or forEach expands to, its condition, and `finally` steps. Ends with the plan hash: `drover run ... --plan-hash HASH` starts the run only if the plan is still the same. When a run would be refused now (every agent a step matches is draining, or none matches), it ends with the reasons instead, offers no hash and exits 1. The workflow is a file, or NAME[@VERSION] of a registered workflow when no such file exists. Nothing is started.',
    )
    .argument('<workflow>', 'workflow file, or NAME[@VERSION] from the registry')
    .option('-p, --param <key=value>', 'workflow parameter (repeatable; a repeated key makes a list)', collectParam)
    .addOption(outputOption())
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover plan examples/onboarding.yaml -p username=alice',
        'drover plan deploy -p version=v1.4.2                  # latest registered version',
        'drover plan deploy@3 -p version=v1.4.2 -o json',
      ),
    )
    .action(async (workflow: string, opts: { param?: string[]; output: string }, cmd: Command) => {
      const params = parseParamArgs(opts.param ?? []);
      const preview = await withClient(cmd, (client) => client.workflows.plan(workflow, params));
      if (opts.output === 'json') printJson(preview);
      else {
        const words = [...cli().split(' '), 'run', workflow, ...(opts.param ?? []).flatMap((p) => ['-p', p]), '--plan-hash', preview.hash];
        process.stdout.write(planText(preview, { workflowArg: workflow, runCommand: shellCommand(words) }));
      }
      if (preview.blockers.length) {
        throw new NoMatchingAgentError(`a run of ${preview.workflow} would be refused now: ${[...new Set(preview.blockers.map((b) => b.message))].join('; ')}`, {
          hint: 'undrain an agent (`drover agent drain NAME --undo`) or start one with matching --label flags, then plan again',
        });
      }
    });
}
