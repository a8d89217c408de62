import type { Command } from 'commander';
import { examples } from '../help.js';
import { parseParamArgs, readParamFiles } from '../../params.js';
import { outputOption, printJson, caOption, serverOption, tokenOption, withClient } from '../context.js';
import { collect, collectParam } from '../options.js';
import { cli } from '../invocation.js';
import { followRun } from '../render/follow.js';
import { workflowLabel } from '../render/runs.js';
import { EXIT } from '../report.js';
import { InvalidInputError } from '../../errors.js';

interface RunOptions {
  param?: string[];
  paramFile?: string[];
  follow?: boolean;
  planHash?: string;
  idempotencyKey?: string;
  local?: boolean;
  output: string;
}

/** `drover run FILE|NAME[@VERSION]`: launch a workflow. */
export function register(program: Command): void {
  program
    .command('run')
    .summary('launch a workflow')
    .description(
      'Submit a workflow and start a run. The workflow is a file (YAML or JSON), or NAME[@VERSION] of a workflow stored with `drover workflow apply` (the latest version without @VERSION) when no file of that name exists. Without --follow, print the run id and return at once. With --follow, print step progress and logs until the run ends, then a summary; the exit code is 0 if the run succeeded and 1 otherwise. Ctrl-C while following detaches: the run goes on. ' +
        'With --local, no control plane is needed: it starts a control plane and one agent, `local`, as real processes in a temporary directory (as `drover dev` does), runs the file there with every step on that agent (target labels are ignored, with a notice), follows it, and stops and removes everything when the run ends or on Ctrl-C; the exit code is the run\'s. For trying a workflow on this machine before it goes to the fleet: its steps run here, as you.',
    )
    .argument('<workflow>', 'workflow file, or NAME[@VERSION] from the registry')
    .option('-p, --param <key=value>', 'workflow parameter (repeatable; a repeated key makes a list)', collectParam)
    .option('--param-file <key=file>', "a param's value read from a file, e.g. a secret param (repeatable)", collect)
    .option('-f, --follow', 'stream progress and logs until the run ends')
    .option('--plan-hash <hash>', 'refuse to start unless the compiled plan has this hash (the hash `drover plan` prints)')
    .option('--local', 'run it on a throwaway control plane and one agent on this machine, then clean up (no fleet needed)')
    .option('--idempotency-key <key>', 'start at most one run for this key: a repeat (same workflow, within the server\'s retention, 24h by default) starts nothing and names the first run')
    .addOption(outputOption())
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover run examples/onboarding.yaml -p username=alice',
        'drover run examples/onboarding.yaml -p username=bob -p role=sales --follow',
        'drover run onboard-employee -p username=carol        # latest registered version',
        'drover run onboard-employee@2 -p username=carol',
        'drover run deploy.yaml --plan-hash 3f9c2a1b -o json   # the hash from `drover plan`',
        'drover run deploy.yaml --param-file api_token=/run/secrets/api-token   # a secret param',
        'drover run onboard-employee -p username=dave --idempotency-key hr-4711   # safe to retry',
        'drover run examples/onboarding.yaml -p username=alice --local   # on this machine, nothing else needed',
      ),
    )
    .action(async (workflow: string, opts: RunOptions, cmd: Command) => {
      const params = { ...parseParamArgs(opts.param ?? []), ...readParamFiles(opts.paramFile ?? []) };
      if (opts.local) {
        const bad = opts.planHash ? '--plan-hash' : opts.idempotencyKey ? '--idempotency-key' : '';
        if (bad) throw new InvalidInputError(`${bad} does not go with --local`, { hint: `a --local run has a control plane of its own, for this run alone: leave out ${bad}` });
        const { runLocal } = await import('../local/run-local.js');
        process.exitCode = await runLocal(workflow, params, { json: opts.output === 'json' });
        return;
      }
      await withClient(cmd, async (client) => {
        const handle = await client.runs.launch(workflow, params, { expectPlanHash: opts.planHash, idempotencyKey: opts.idempotencyKey });
        const started = handle.deduplicated
          ? `run ${handle.id} was already started with idempotency key ${JSON.stringify(opts.idempotencyKey)} (${workflowLabel(handle.run)}); nothing new was started`
          : `run ${handle.id} started (${workflowLabel(handle.run)})`;
        if (!opts.follow) {
          if (opts.output === 'json') return printJson(handle.run);
          process.stdout.write(`${started}\nsee its progress with: ${cli()} status ${handle.id}\n`);
          return;
        }
        process.once('SIGINT', () => {
          process.stderr.write(`\ndetached; run ${handle.id} goes on. reattach with: ${cli()} logs ${handle.id} --follow\n`);
          process.exit(EXIT.interrupted);
        });
        if (opts.output !== 'json') process.stdout.write(`${started}\n`);
        const run =
          opts.output === 'json'
            ? await handle.wait()
            : await followRun(client, handle.id);
        if (opts.output === 'json') printJson(run);
        process.exitCode = run.status === 'succeeded' ? EXIT.ok : EXIT.failure;
      });
    });
}
