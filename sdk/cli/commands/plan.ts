import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { FileNotFoundError, InvalidInputError, NoMatchingAgentError } from '../../errors.js';
import { parseDeviceSnapshot, parseFleetSnapshot, planWorkflow } from '../../offline.js';
import { parseParamArgs } from '../../params.js';
import { outputOption, printJson, caOption, serverOption, tokenOption, withClient } from '../context.js';
import { examples } from '../help.js';
import { collectParam } from '../options.js';
import { cli } from '../invocation.js';
import { planText } from '../render/plan.js';
import { shellCommand } from '../shell.js';

/** `drover plan FILE|NAME[@VERSION]`: what a run would do now. */
export function register(program: Command): void {
  program
    .command('plan')
    .summary('preview what a run would do, without running it')
    .description(
      'Compile a workflow with params against the fleet as it is now and print the plan: the waves of steps that can run together, each step\'s kind, target and strategy, the agents it matches now with their state, the agent it would run on or the instances a fan-out or forEach expands to, its condition, and `finally` steps. Ends with the plan hash: `drover run ... --plan-hash HASH` starts the run only if the plan is still the same. When a run would be refused now (every agent a step matches is draining, or none matches), it ends with the reasons instead, offers no hash and exits 1. The workflow is a file, or NAME[@VERSION] of a registered workflow when no such file exists. Nothing is started. ' +
        'With --fleet FILE it needs no control plane: it plans on this machine, with the control plane\'s own compiler and placement, against the fleet saved in FILE (and the devices of --devices), and prints the same plan and hash the control plane would for that fleet. Offline, stored secrets are not checked and a registry NAME cannot be planned.',
    )
    .argument('<workflow>', 'workflow file, or NAME[@VERSION] from the registry')
    .option('-p, --param <key=value>', 'workflow parameter (repeatable; a repeated key makes a list)', collectParam)
    .option('--fleet <file>', 'plan offline, against this saved fleet (`drover fleet -o json > fleet.json`) instead of asking the control plane')
    .option('--devices <file>', 'with --fleet: the device inventory for ssh steps (`drover device list -o json > devices.json`); default none')
    .addOption(outputOption())
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover plan examples/onboarding.yaml -p username=alice',
        'drover plan deploy -p version=v1.4.2                  # latest registered version',
        'drover plan deploy@3 -p version=v1.4.2 -o json',
        'drover fleet -o json > fleet.json && drover plan deploy.yaml --fleet fleet.json -p version=v1.4.2   # offline, e.g. in CI',
      ),
    )
    .action(async (workflow: string, opts: { param?: string[]; output: string; fleet?: string; devices?: string }, cmd: Command) => {
      const params = parseParamArgs(opts.param ?? []);
      if (opts.devices && !opts.fleet) throw new InvalidInputError('--devices goes with --fleet', { hint: 'give the saved fleet too: --fleet fleet.json (from `drover fleet -o json`)' });
      const preview = opts.fleet
        ? await planWorkflow(workflow, params, {
            agents: parseFleetSnapshot(await readSnapshot(opts.fleet, '--fleet'), opts.fleet),
            devices: opts.devices ? parseDeviceSnapshot(await readSnapshot(opts.devices, '--devices'), opts.devices) : [],
          })
        : await withClient(cmd, (client) => client.workflows.plan(workflow, params));
      if (opts.output === 'json') printJson(preview);
      else {
        const words = [...cli().split(' '), 'run', workflow, ...(opts.param ?? []).flatMap((p) => ['-p', p]), '--plan-hash', preview.hash];
        process.stdout.write(planText(preview, { workflowArg: workflow, runCommand: shellCommand(words) }));
      }
      if (preview.blockers.length) {
        throw new NoMatchingAgentError(`a run of ${preview.workflow} would be refused now: ${[...new Set(preview.blockers.map((b) => b.message))].join('; ')}`, {
          hint: 'undrain an agent (`drover agent drain NAME --undo`) or start one with matching --label flags, then plan again',
        });
      }
    });
}

/** A saved fleet or inventory file's text; a missing one is named with its flag. */
async function readSnapshot(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    const Err = missing ? FileNotFoundError : InvalidInputError;
    throw new Err(`${flag} ${file}: ${missing ? 'no such file' : (err as Error).message}`, {
      hint: flag === '--fleet' ? 'save the fleet with `drover fleet -o json > fleet.json`' : 'save the inventory with `drover device list -o json > devices.json`',
      cause: err,
    });
  }
}
