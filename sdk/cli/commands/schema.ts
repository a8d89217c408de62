import type { Command } from 'commander';
import { workflowJsonSchema } from '../../offline.js';
import { examples } from '../help.js';

/** `drover schema`: the workflow format's JSON Schema, for editors and CI. */
export function register(program: Command): void {
  program
    .command('schema')
    .summary('print the JSON Schema of the workflow format')
    .description(
      "Print the JSON Schema (draft 2020-12) of workflow files, made from the compiler's own schema, for editors (the YAML language server in VS Code and others) and CI. It checks the shape of a file; `drover validate` checks everything, the rules across fields included. Needs no control plane. See docs/workflows.md, \"Editors and CI\".",
    )
    .addHelpText(
      'after',
      examples(
        'drover schema > workflow.schema.json',
        '# then, first line of a workflow file:  # yaml-language-server: $schema=./workflow.schema.json',
      ),
    )
    .action(() => {
      process.stdout.write(workflowJsonSchema());
    });
}
