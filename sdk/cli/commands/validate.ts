import type { Command } from 'commander';
import { DroverError, FileNotFoundError, InvalidInputError } from '../../errors.js';
import { validateWorkflow } from '../../offline.js';
import type { WorkflowValidation } from '../../types.js';
import { explicitServer, outputOption, printJson, caOption, serverOption, tokenOption, withClient } from '../context.js';
import { examples } from '../help.js';
import { cli } from '../invocation.js';
import { validationText } from '../render/problems.js';
import { EXIT } from '../report.js';

/** One file's result, as `-o json` prints it. */
interface FileValidation extends WorkflowValidation {
  file: string;
}

/** `drover validate FILE...`: compile workflow files without running them, offline unless a control plane is named. */
export function register(program: Command): void {
  program
    .command('validate')
    .summary('check workflow files without running them')
    .description(
      "Compile workflow files on this machine with the control plane's own compiler and print every error and warning, one per line, as FILE:LINE:COL: error: message  (at path). No control plane is needed and none is contacted: it works in CI. " +
        'With --server (or DROVER_ADDR) the control plane compiles them instead and adds the checks that need its state: targets no agent matches now, devices missing from the inventory, trigger names another registered workflow uses, and whether the file is a registered version (a note on stderr). ' +
        'When DROVER_ADDR names a control plane that does not answer, the offline checks stand and a note says the fleet checks were skipped; with --server that is an error. ' +
        'Nothing is stored or started. Exit code 0 when every file is valid (warnings allowed), 1 when any file has an error or cannot be read. With -o json: the result object for one file, an array for several.',
    )
    .argument('<files...>', 'workflow files (YAML or JSON)')
    .addOption(outputOption())
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover validate examples/onboarding.yaml',
        'drover validate workflows/*.yaml                 # in CI: offline, exit code 1 on any error',
        'drover validate deploy.yaml -o json',
        'drover validate deploy.yaml --server cp.example:7400   # adds the fleet, inventory and registry checks',
      ),
    )
    .action(async (files: string[], opts: { output: string }, cmd: Command) => {
      const server = explicitServer(cmd);
      let results: FileValidation[] | undefined;
      if (server) {
        try {
          results = await withClient(cmd, (client) => checkAll(files, (f) => client.workflows.validate(f, { remote: true })));
        } catch (err) {
          // DROVER_ADDR may be set by a shell or a CI runner for other commands: a control plane it names that does not answer leaves the offline checks.
          if (server.from === 'flag' || !(err instanceof DroverError) || !['SERVER_UNREACHABLE', 'INVALID_INPUT'].includes(err.code)) throw err;
          const why = err.code === 'SERVER_UNREACHABLE' ? `no control plane answered at ${server.address} (DROVER_ADDR)` : `DROVER_ADDR: ${err.message}`;
          process.stderr.write(`note: ${why}, so the fleet checks were skipped; the files were checked offline\n`);
        }
      }
      results ??= await checkAll(files, validateWorkflow);
      if (opts.output === 'json') printJson(results.length === 1 ? results[0] : results);
      else process.stdout.write(results.map((r) => validationText(r.file, r)).join(''));
      for (const r of results) {
        const note = registryNote(r);
        if (note) process.stderr.write(`${r.file}: note: ${note}\n`);
      }
      if (results.some((r) => !r.valid)) process.exitCode = EXIT.failure;
    });
}

/** Checks each file; a missing or unreadable file is that file's problem, and the others are still checked. */
async function checkAll(files: string[], check: (file: string) => Promise<WorkflowValidation>): Promise<FileValidation[]> {
  const out: FileValidation[] = [];
  for (const file of files) {
    try {
      out.push({ file, ...(await check(file)) });
    } catch (err) {
      if (!(err instanceof FileNotFoundError || err instanceof InvalidInputError)) throw err;
      const message = err instanceof FileNotFoundError ? 'file not found' : err.message;
      out.push({ file, workflow: '', valid: false, problems: [{ path: '', line: 0, column: 0, message, severity: 'error' }] });
    }
  }
  return out;
}

/** What the registry says of a file (remote checks only): the version it is, or that applying it stores a new one. */
function registryNote(r: FileValidation): string {
  if (!r.registry || !r.valid) return '';
  const { latest, sameAs } = r.registry;
  if (sameAs === latest) return `${r.workflow}@${latest} is this file, the latest registered version`;
  if (sameAs) return `${r.workflow}@${sameAs} is this file; the latest registered version is ${latest}`;
  return `differs from ${r.workflow}@${latest}, the latest registered version (\`${cli()} workflow diff ${r.file}\` shows how; \`${cli()} workflow apply ${r.file}\` would store version ${latest + 1})`;
}
