import type { Command } from 'commander';
import { examples } from '../help.js';
import { caOption, serverOption, tokenOption, withClient } from '../context.js';

/** `drover approve RUN STEP [--reject] [--reason TEXT]`: decide an approval step. */
export function register(program: Command): void {
  program
    .command('approve')
    .summary('approve (or --reject) an approval step of a run')
    .description(
      'Decide an approval step that waits for a decision (`drover status RUN` shows it, with who may decide). ' +
        'Approved, the step succeeds and the run goes on; rejected, the step fails ("rejected by NAME: reason"). ' +
        'Your token must be among the step\'s approvers: a role it holds (or one below it) or its name (drover token create --name). ' +
        'Who decided and why go into the step, the run\'s log and the audit log.',
    )
    .argument('<run>', 'run id (or a unique prefix)')
    .argument('<step>', 'the approval step')
    .option('--reject', 'reject instead of approve')
    .option('--reason <text>', 'why (kept with the decision; at most 1000 characters)')
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover approve r-7f3a2c go-live',
        'drover approve r-7f3a2c go-live --reason "change window CHG-1042 is open"',
        'drover approve r-7f3a2c go-live --reject --reason "wait for the load test"',
      ),
    )
    .action(async (runId: string, stepId: string, opts: { reject?: boolean; reason?: string }, cmd: Command) => {
      const run = await withClient(cmd, (client) => (opts.reject ? client.runs.reject(runId, stepId, { reason: opts.reason }) : client.runs.approve(runId, stepId, { reason: opts.reason })));
      const step = run.steps.find((s) => s.id === stepId);
      const by = step?.approval?.decidedBy ? ` by ${step.approval.decidedBy}` : '';
      process.stdout.write(`step ${stepId} of run ${run.id} ${opts.reject ? 'rejected' : 'approved'}${by}; the run is ${run.status}\n`);
    });
}
