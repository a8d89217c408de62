import type { Command } from 'commander';
import { InvalidInputError } from '../../errors.js';
import { examples } from '../help.js';
import { caOption, serverOption, tokenOption, withClient } from '../context.js';
import { positiveInt } from '../options.js';
import { EXIT } from '../report.js';

/** `drover logs RUN [STEP] [--attempt N]`: what steps printed, every attempt or one. */
export function register(program: Command): void {
  program
    .command('logs')
    .summary('print the logs of a run')
    .description(
      'Print what the steps of a run wrote, oldest first. Without STEP, each line is prefixed with its step id. Lines a step wrote to stderr go to stderr. ' +
        'Lines of every attempt are kept, also of an attempt whose agent was declared lost and finished it later; ' +
        'a line of a step with more than one attempt is labelled with its attempt, e.g. "#2 edge-b" (number and agent, as `drover status` lists them).',
    )
    .argument('<run>', 'run id')
    .argument('[step]', 'only this step')
    .option('--step <id>', 'only this step (the same as STEP)')
    .option(
      '--attempt <n>',
      "only each step's n-th attempt, counted from 1 across agents as `drover status` numbers them (a step moved from edge-a to edge-b has attempts 1 and 2)",
      positiveInt,
    )
    .option('-f, --follow', 'keep printing new lines until the run ends')
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover logs r-7f3a2c',
        'drover logs r-7f3a2c create-account',
        'drover logs r-7f3a2c --step create-account --attempt 1',
        'drover logs r-7f3a2c --follow',
      ),
    )
    .action(async (runId: string, stepArg: string | undefined, opts: { step?: string; attempt?: number; follow?: boolean }, cmd: Command) => {
      if (stepArg && opts.step && stepArg !== opts.step) throw new InvalidInputError(`two steps given: "${stepArg}" and --step "${opts.step}"`, { hint: 'give one' });
      const step = stepArg ?? opts.step;
      process.once('SIGINT', () => process.exit(EXIT.interrupted));
      await withClient(cmd, async (client) => {
        // Which steps have several attempts, so that their lines say which one they come from.
        const run = await client.runs.get(runId);
        const several = new Set(run.steps.filter((s) => s.attempts.length > 1).map((s) => s.id));
        const known = step ? run.steps.find((s) => s.id === step) : undefined;
        if (opts.attempt && known && !opts.follow && !known.attempts.some((a) => a.number === opts.attempt)) {
          throw new InvalidInputError(`step ${step} of run ${runId} has no attempt ${opts.attempt}`, {
            hint: `its attempts are ${known.attempts.map((a) => a.number).join(', ') || 'none yet'}; \`drover status ${runId}\` lists them`,
          });
        }
        for await (const line of client.logs(runId, step, { follow: opts.follow, attempt: opts.attempt })) {
          const label = !opts.attempt && (several.has(line.stepId) || line.attempt > 1) ? `#${line.attempt || '?'} ${line.agent}` : '';
          const prefix = [step ? '' : line.stepId, label].filter(Boolean).join(' ');
          const out = `${prefix ? `${prefix} | ` : ''}${line.text}\n`;
          (line.stream === 'stderr' ? process.stderr : process.stdout).write(out);
        }
      });
    });
}
