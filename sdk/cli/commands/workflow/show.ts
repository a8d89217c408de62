import type { Command } from 'commander';
import { outputOption, printJson, caOption, serverOption, tokenOption, withClient } from '../../context.js';
import { examples } from '../../help.js';
import { workflowHeader } from '../../render/workflows.js';

/** `drover workflow show NAME[@VERSION]`: one stored version and its source. */
export function register(group: Command): void {
  group
    .command('show')
    .summary('show a registered workflow and its source')
    .description(
      'Show one version of a registered workflow (the latest unless @VERSION is given): its version, when it was stored, its hash and description, then the document as it was applied. --source prints the document alone, to edit and apply again.',
    )
    .argument('<workflow>', 'NAME or NAME@VERSION')
    .option('--source', 'print only the document')
    .addOption(outputOption())
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover workflow show onboard-employee',
        'drover workflow show onboard-employee@2 -o json',
        'drover workflow show onboard-employee --source > onboarding.yaml',
      ),
    )
    .action(async (ref: string, opts: { source?: boolean; output: string }, cmd: Command) => {
      const w = await withClient(cmd, (client) => client.workflows.get(ref));
      if (opts.output === 'json') return printJson(w);
      const source = w.source.endsWith('\n') ? w.source : `${w.source}\n`;
      process.stdout.write(opts.source ? source : `${workflowHeader(w)}\n${source}`);
    });
}
