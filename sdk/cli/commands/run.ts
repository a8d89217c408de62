import type { Command } from 'commander';
import { examples } from '../help.js';
import { parseParamArgs } from '../../params.js';
import { outputOption, printJson, serverOption, withClient } from '../context.js';
import { collectParam } from '../options.js';
import { followRun } from '../render/follow.js';
import { EXIT } from '../report.js';

interface RunOptions {
  param?: string[];
  follow?: boolean;
  planHash?: string;
  output: string;
}

/** `drover run FILE`: launch a workflow. */
export function register(program: Command): void {
  program
    .command('run')
    .summary('launch a workflow')
    .description(
      'Submit a workflow file (YAML or JSON) and start a run. Without --follow, print the run id and return at once. With --follow, print step progress and logs until the run ends, then a summary; the exit code is 0 if the run succeeded and 1 otherwise. Ctrl-C while following detaches: the run goes on.',
    )
    .argument('<file>', 'workflow file')
    .option('-p, --param <key=value>', 'workflow parameter (repeatable; a repeated key makes a list)', collectParam)
    .option('-f, --follow', 'stream progress and logs until the run ends')
    .option('--plan-hash <hash>', 'refuse to start unless the compiled plan has this hash (the hash `drover status` shows)')
    .addOption(outputOption())
    .addOption(serverOption())
    .addHelpText(
      'after',
      examples(
        'drover run examples/onboarding.yaml -p username=alice',
        'drover run examples/onboarding.yaml -p username=bob -p role=sales --follow',
        'drover run deploy.yaml --plan-hash 3f9c2a1b -o json',
      ),
    )
    .action(async (file: string, opts: RunOptions, cmd: Command) => {
      const params = parseParamArgs(opts.param ?? []);
      await withClient(cmd, async (client) => {
        const handle = await client.runs.launch(file, params, { expectPlanHash: opts.planHash });
        if (!opts.follow) {
          if (opts.output === 'json') return printJson(handle.run);
          process.stdout.write(`run ${handle.id} started (${handle.run.workflow})\nsee its progress with: drover status ${handle.id}\n`);
          return;
        }
        process.once('SIGINT', () => {
          process.stderr.write(`\ndetached; run ${handle.id} goes on. reattach with: drover logs ${handle.id} --follow\n`);
          process.exit(EXIT.interrupted);
        });
        if (opts.output !== 'json') process.stdout.write(`run ${handle.id} started (${handle.run.workflow})\n`);
        const run =
          opts.output === 'json'
            ? await handle.wait()
            : await followRun(client, handle.id);
        if (opts.output === 'json') printJson(run);
        process.exitCode = run.status === 'succeeded' ? EXIT.ok : EXIT.failure;
      });
    });
}
