import type { Command } from 'commander';
import { FileNotFoundError, InvalidInputError } from '../../errors.js';
import type { WorkflowValidation } from '../../types.js';
import { outputOption, printJson, caOption, serverOption, tokenOption, withClient } from '../context.js';
import { examples } from '../help.js';
import { validationText } from '../render/problems.js';
import { EXIT } from '../report.js';

/** One file's result, as `-o json` prints it. */
interface FileValidation extends WorkflowValidation {
  file: string;
}

/** `drover validate FILE...`: compile workflow files without running them. */
export function register(program: Command): void {
  program
    .command('validate')
    .summary('check workflow files without running them')
    .description(
      "Compile workflow files with the control plane's compiler (the same one that checks a run) and print every error and warning, one per line, as FILE:LINE:COL: error: message  (at path). Nothing is stored or started. Exit code 1 when any file has an error. With -o json: the result object for one file, an array for several.",
    )
    .argument('<files...>', 'workflow files (YAML or JSON)')
    .addOption(outputOption())
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover validate examples/onboarding.yaml',
        'drover validate workflows/*.yaml                 # in CI: exit code 1 on any error',
        'drover validate deploy.yaml -o json',
      ),
    )
    .action(async (files: string[], opts: { output: string }, cmd: Command) => {
      const results = await withClient(cmd, async (client) => {
        const out: FileValidation[] = [];
        for (const file of files) {
          try {
            out.push({ file, ...(await client.workflows.validate(file)) });
          } catch (err) {
            // A missing or unreadable file is this file's problem; the others are still checked.
            if (!(err instanceof FileNotFoundError || err instanceof InvalidInputError)) throw err;
            const message = err instanceof FileNotFoundError ? 'file not found' : err.message;
            out.push({ file, workflow: '', valid: false, problems: [{ path: '', line: 0, column: 0, message, severity: 'error' }] });
          }
        }
        return out;
      });
      if (opts.output === 'json') printJson(results.length === 1 ? results[0] : results);
      else process.stdout.write(results.map((r) => validationText(r.file, r)).join(''));
      if (results.some((r) => !r.valid)) process.exitCode = EXIT.failure;
    });
}
