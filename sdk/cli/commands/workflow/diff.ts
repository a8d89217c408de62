import type { Command } from 'commander';
import { outputOption, printJson, caOption, serverOption, tokenOption, withClient } from '../../context.js';
import { examples } from '../../help.js';
import { diffText } from '../../render/diff.js';
import { EXIT, formatError } from '../../report.js';

/** `drover workflow diff FILE [NAME[@VERSION]]`: what applying FILE would change, for review and CI gates. */
export function register(group: Command): void {
  group
    .command('diff')
    .summary('show what changes between a file and its registered version')
    .description(
      "Compare a workflow file with a registered version, step by step, as `nomad job plan` does: the workflow's own fields (params, env, triggers, ...), then each step by id, added (+), removed (-) or changed (~) with the fields that changed (a script shows the lines that differ). " +
        "Against the latest version of the file's own name unless NAME or NAME@VERSION is given; a name that is not registered shows every step as added. Comments, key order and layout are no change. " +
        'Exit code 0 when the contents are equal, 1 when they differ, 2 when the comparison could not be made (a file that cannot be read, no such version, no control plane). With -o json: the diff as an object.',
    )
    .argument('<file>', 'workflow file (YAML or JSON)')
    .argument('[workflow]', "registered NAME or NAME@VERSION to compare with (default: the file's name, latest version)")
    .addOption(outputOption())
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover workflow diff examples/onboarding.yaml',
        'drover workflow diff onboarding.yaml onboard-employee@2',
        'drover workflow diff deploy.yaml || echo "deploy.yaml changes the registered workflow"   # CI gate',
        'drover workflow diff deploy.yaml -o json',
      ),
    )
    .action(async (file: string, ref: string | undefined, opts: { output: string }, cmd: Command) => {
      let diff;
      try {
        diff = await withClient(cmd, (client) => client.workflows.diff(file, ref));
      } catch (err) {
        // 1 means "different" here, so a diff that could not be made exits 2.
        process.stderr.write(formatError(err));
        process.exitCode = EXIT.usage;
        return;
      }
      if (opts.output === 'json') printJson({ file, ...diff });
      else process.stdout.write(diffText(diff, file));
      process.exitCode = diff.equal ? EXIT.ok : EXIT.failure;
    });
}
