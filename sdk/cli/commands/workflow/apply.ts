import type { Command } from 'commander';
import { outputOption, printJson, caOption, serverOption, tokenOption, withClient } from '../../context.js';
import { examples } from '../../help.js';
import { applyLine } from '../../render/workflows.js';

/** `drover workflow apply FILE...`: store workflows in the registry. */
export function register(group: Command): void {
  group
    .command('apply')
    .summary('store workflow files in the registry')
    .description(
      'Compile each workflow file and store it under its `name`. A new version is stored only when the text differs from the latest version; otherwise the file is reported unchanged. An invalid file is rejected with its problems and nothing is stored for it. Then `drover run NAME` runs the latest version, `drover run NAME@VERSION` a given one. With -o json: the stored version for one file, an array for several.',
    )
    .argument('<files...>', 'workflow files (YAML or JSON)')
    .addOption(outputOption())
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover workflow apply examples/onboarding.yaml',
        'drover workflow apply workflows/*.yaml -o json',
      ),
    )
    .action(async (files: string[], opts: { output: string }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const stored = [];
        for (const file of files) {
          const w = await client.workflows.apply(file);
          stored.push(w);
          if (opts.output !== 'json') process.stdout.write(applyLine(w));
          for (const warning of w.warnings ?? []) process.stderr.write(`warning: ${w.name}: ${warning}\n`);
        }
        if (opts.output === 'json') printJson(stored.length === 1 ? stored[0] : stored);
      });
    });
}
