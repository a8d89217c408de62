import type { Command } from 'commander';
import { examples } from '../help.js';
import { outputOption, printJson, caOption, serverOption, tokenOption, withClient } from '../context.js';
import { cli } from '../invocation.js';
import { followRun } from '../render/follow.js';
import { workflowLabel } from '../render/runs.js';
import { EXIT } from '../report.js';
import type { Run } from '../../types.js';

interface RerunCliOptions {
  from?: string;
  failedOnly?: boolean;
  follow?: boolean;
  idempotencyKey?: string;
  output: string;
}

/** "3 steps reused from r-…, 2 to run" for the start line. */
function reuseNote(run: Run): string {
  const units = run.steps.filter((s) => s.kind !== 'group');
  const reused = units.filter((s) => s.reusedFrom).length;
  return reused ? `; ${reused} of ${units.length} step${units.length === 1 ? '' : 's'} reused from ${run.rerunOf}` : '';
}

/** `drover rerun RUN`: a new run of a finished run's plan, reusing what succeeded. */
export function register(program: Command): void {
  program
    .command('rerun')
    .summary('run a finished run again')
    .description(
      'Start a new run of a finished run: the same workflow version, params and plan hash, placed on the fleet as it is now. ' +
        'Without options every step runs again. With --from STEP, STEP and every step that depends on it run again and the steps before it that succeeded are reused: ' +
        'copied with their outputs, never sent to an agent (`drover status` marks them "reused"). ' +
        'With --failed-only, only what did not succeed runs again (failed, skipped or cancelled steps and fan-out or forEach instances, and what depends on them), ' +
        'each fan-out instance on its own agent: retry the failed nodes. Finally steps always run. ' +
        'A run whose re-run steps use a secret param cannot be re-run (its value is not kept after a run ends): launch it anew with -p. ' +
        'RUN is the run id or a unique prefix of it. With --follow, print progress until the run ends; the exit code is 0 if it succeeded and 1 otherwise.',
    )
    .argument('<run>', 'the finished run: its id, or a unique prefix of it')
    .option('--from <step>', 'run this step and what depends on it again; reuse what succeeded before it (a step id, or one instance: "deploy[web-2]")')
    .option('--failed-only', 'run again only what did not succeed; reuse every step and instance that did')
    .option('-f, --follow', 'stream progress and logs until the run ends')
    .option('--idempotency-key <key>', 'a repeat with the same key starts nothing and prints the run the first one started')
    .addOption(outputOption())
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover rerun r-261201-101500-7f3a2c1d                 # every step again',
        'drover rerun r-261201-1015 --from provision-laptop     # reuse create-account, run the rest',
        'drover rerun r-261201-1015 --failed-only --follow      # only the failed fan-out instances',
        'drover rerun r-261201-1015 --from "deploy[web-2]"      # one instance and what follows the fan-out',
        'drover rerun r-261201-1015 -o json',
      ),
    )
    .action(async (id: string, opts: RerunCliOptions, cmd: Command) => {
      if (opts.from !== undefined && opts.failedOnly) cmd.error('error: --from and --failed-only do not go together: --failed-only already reuses every step that succeeded', { exitCode: EXIT.usage });
      await withClient(cmd, async (client) => {
        const handle = await client.runs.rerun(id, { from: opts.from, failedOnly: opts.failedOnly, idempotencyKey: opts.idempotencyKey });
        const run = handle.run;
        const started = run.deduplicated
          ? `run ${run.id} was started before with this idempotency key (a re-run of ${run.rerunOf}); nothing new was started\n`
          : `run ${run.id} started (${workflowLabel(run)}, a re-run of ${run.rerunOf}${reuseNote(run)})\n`;
        if (!opts.follow) {
          if (opts.output === 'json') return printJson(run);
          process.stdout.write(`${started}see its progress with: ${cli()} status ${run.id}\n`);
          return;
        }
        process.once('SIGINT', () => {
          process.stderr.write(`\ndetached; run ${run.id} goes on. reattach with: ${cli()} logs ${run.id} --follow\n`);
          process.exit(EXIT.interrupted);
        });
        if (opts.output !== 'json') process.stdout.write(started);
        const final = opts.output === 'json' ? await handle.wait() : await followRun(client, run.id);
        if (opts.output === 'json') printJson(final);
        process.exitCode = final.status === 'succeeded' ? EXIT.ok : EXIT.failure;
      });
    });
}
