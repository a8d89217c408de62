/** The `drover` command tree: global options and the one place commands are registered. */
import { createRequire } from 'node:module';
import { Command } from 'commander';
import { caOption, serverOption, tokenOption } from './context.js';
import { examples } from './help.js';
import * as agent from './commands/agent.js';
import * as cancel from './commands/cancel.js';
import * as completion from './commands/completion.js';
import * as dev from './commands/dev.js';
import * as deviceAdd from './commands/device/add.js';
import * as deviceList from './commands/device/list.js';
import * as deviceRemove from './commands/device/remove.js';
import * as fleet from './commands/fleet.js';
import * as logs from './commands/logs.js';
import * as run from './commands/run.js';
import * as runs from './commands/runs.js';
import * as server from './commands/server.js';
import * as status from './commands/status.js';
import * as stats from './commands/stats.js';
import * as plan from './commands/plan.js';
import * as validate from './commands/validate.js';
import * as workflowApply from './commands/workflow/apply.js';
import * as workflowList from './commands/workflow/list.js';
import * as workflowShow from './commands/workflow/show.js';
import * as tokenCreate from './commands/token/create.js';
import * as whoami from './commands/whoami.js';
import * as tokenList from './commands/token/list.js';
import * as tokenRevoke from './commands/token/revoke.js';
import * as secretSet from './commands/secret/set.js';
import * as secretList from './commands/secret/list.js';
import * as secretRm from './commands/secret/rm.js';
import * as audit from './commands/audit.js';

/** A command that only groups subcommands (`drover workflow apply|list|show`). */
function group(name: string, summary: string, description: string, verbs: readonly { register(group: Command): void }[], help: string) {
  return {
    register(program: Command): void {
      const cmd = program.command(name).summary(summary).description(description).addOption(serverOption()).addOption(tokenOption()).addOption(caOption()).addHelpText('after', help);
      for (const verb of verbs) verb.register(cmd);
    },
  };
}

const workflow = group(
  'workflow',
  'the workflow registry: apply, list, show',
  'Store workflows in the control plane under their name, with a new version each time the content changes; `drover run NAME` runs the latest, `drover run NAME@VERSION` a given one.',
  [workflowApply, workflowList, workflowShow],
  examples(
    'drover workflow apply examples/onboarding.yaml     # onboard-employee: version 1 stored',
    'drover workflow list',
    'drover workflow show onboard-employee@1',
    'drover run onboard-employee -p username=bob',
  ),
);

const device = group(
  'device',
  'the device inventory for ssh steps: add, list, remove',
  'Register network devices (switches, routers, appliances) that run no agent. ssh steps drive them through a proxy agent for their network (an agent labelled proxy=<network>); credentials are referred to by name and stay on the proxy agents. See docs/devices.md.',
  [deviceAdd, deviceList, deviceRemove],
  examples(
    'drover device add core-1 --host 10.0.0.2 --user admin --credential lab-admin --network lab --label role=core',
    'drover device list',
    'drover device remove core-1',
  ),
);

const token = group(
  'token',
  'API and enrollment tokens: create, list, revoke',
  'Tokens are how people, scripts and new agents prove themselves to the control plane. API tokens carry a role (viewer, operator, admin); enrollment tokens let an agent enroll once. Only a hash of each is stored. See docs/security.md.',
  [tokenCreate, tokenList, tokenRevoke],
  examples(
    'drover token create --role viewer --description dashboards',
    'drover token create --enroll --ttl 1h --uses 1',
    'drover token list',
    'drover token revoke 3f2a9c1d0b7e',
  ),
);

const secret = group(
  'secret',
  'named secrets for steps: set, list, rm',
  'Secrets are stored encrypted by the control plane and sent only to the agent that runs a step using them, with that step; they never appear in plans, state, logs or outputs (masked). A step names them in `secrets: [NAME]` (an environment variable of that name) or `${{ secrets.NAME }}`; an ssh device credential of the same name uses it. See docs/security.md.',
  [secretSet, secretList, secretRm],
  examples('printf %s "$DB_PASSWORD" | drover secret set DB_PASSWORD', 'drover secret list', 'drover secret rm DB_PASSWORD'),
);

const COMMANDS = [dev, server, agent, fleet, device, validate, plan, run, runs, status, logs, cancel, stats, workflow, token, secret, audit, whoami, completion];

/** The package version from package.json: two levels up from sdk/cli/ in the source tree, three from dist/sdk/cli/. */
function version(): string {
  const require = createRequire(import.meta.url);
  for (const path of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = require(path) as { name?: string; version?: string };
      if (pkg.name === 'drover' && pkg.version) return pkg.version;
    } catch {
      // try the next layout
    }
  }
  return '0.0.0';
}

/** Builds the program. Commander errors are thrown (exitOverride), not exited on. */
export function buildProgram(): Command {
  const program = new Command('drover')
    .description('Drover: run workflows across a fleet of edge agents.')
    .version(version(), '-V, --version', 'print the drover version')
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .enablePositionalOptions()
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .configureHelp({ sortSubcommands: false, showGlobalOptions: false })
    .addHelpText(
      'after',
      '\nEnvironment:\n' +
        '  DROVER_ADDR    control plane address used when --server is not given\n' +
        '  DROVER_TOKEN   API token used when --token is not given\n' +
        '  DROVER_CA      CA certificate file used when --ca is not given\n' +
        '  DROVER_OUTPUT  default -o of listings: table, wide, json or yaml\n' +
        '  DROVER_CONFIG  config file (YAML: address, token or tokenFile, ca, output); default $XDG_CONFIG_HOME/drover/config.yaml or ~/.config/drover/config.yaml\n' +
        '  NO_COLOR       never colour the output (any value); FORCE_COLOR=1 colours it even when stdout is not a terminal\n\n' +
        'Examples:\n' +
        '  drover dev                                          # local control plane + 3 agents\n' +
        '  drover fleet\n' +
        '  drover validate examples/onboarding.yaml\n' +
        '  drover plan examples/onboarding.yaml -p username=alice\n' +
        '  drover run examples/onboarding.yaml -p username=alice --follow\n' +
        '  drover workflow apply examples/onboarding.yaml && drover run onboard-employee -p username=bob\n' +
        '  drover runs --watch                                 # live, until Ctrl-C\n' +
        '  drover status <run-id prefix> --watch\n' +
        '  source <(drover completion bash)',
    );
  for (const command of COMMANDS) command.register(program);
  return program;
}
