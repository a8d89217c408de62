/**
 * The `drover` command tree: global options and the one place commands are
 * registered. Each command's module is loaded only when that command runs
 * (docs/performance.md): `drover fleet` loads fleet's code and nothing of
 * `agent install`'s SSH or `dev`'s supervisor, and `drover --help` or
 * `--version` loads no command at all when the bundle carries the command
 * list (scripts/build-cli.ts).
 */
import { createRequire } from 'node:module';
import { Command, Help } from 'commander';
import { caOption, serverOption, tokenOption } from './server-options.js';
import { examples } from './help.js';
import { readConfig } from './config.js';
import { prepareOutput } from './output.js';

/** What a command module exports: it adds its command (and any subcommands) to a parent. */
interface Registrar {
  register(parent: Command): void;
}

/** A top-level command: its name, and how to load the module(s) that register it. */
interface CommandEntry {
  name: string;
  load(): Promise<Registrar>;
}

/** A command that only groups subcommands (`drover workflow apply|list|show`), its verbs loaded with it. */
function group(name: string, summary: string, description: string, verbs: () => Promise<readonly Registrar[]>, help: string): CommandEntry {
  return {
    name,
    async load() {
      const loaded = await verbs();
      return {
        register(program: Command): void {
          const cmd = program.command(name).summary(summary).description(description).addOption(serverOption()).addOption(tokenOption()).addOption(caOption()).addHelpText('after', help);
          for (const verb of loaded) verb.register(cmd);
        },
      };
    },
  };
}

const workflow = group(
  'workflow',
  'the workflow registry: apply, list, show, diff',
  'Store workflows in the control plane under their name, with a new version each time the content changes; `drover run NAME` runs the latest, `drover run NAME@VERSION` a given one. `drover workflow diff FILE` shows what applying a file would change, step by step.',
  () => Promise.all([import('./commands/workflow/apply.js'), import('./commands/workflow/list.js'), import('./commands/workflow/show.js'), import('./commands/workflow/diff.js')]),
  examples(
    'drover workflow apply examples/onboarding.yaml     # onboard-employee: version 1 stored',
    'drover workflow list',
    'drover workflow show onboard-employee@1',
    'drover workflow diff examples/onboarding.yaml       # what applying it would change; exit 1 when it differs',
    'drover run onboard-employee -p username=bob',
  ),
);

const device = group(
  'device',
  'the device inventory for ssh steps: add, list, remove',
  'Register network devices (switches, routers, appliances) that run no agent. ssh steps drive them through a proxy agent for their network (an agent labelled proxy=<network>); credentials are referred to by name and stay on the proxy agents. See docs/devices.md.',
  () => Promise.all([import('./commands/device/add.js'), import('./commands/device/list.js'), import('./commands/device/remove.js')]),
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
  () => Promise.all([import('./commands/token/create.js'), import('./commands/token/list.js'), import('./commands/token/revoke.js')]),
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
  () => Promise.all([import('./commands/secret/set.js'), import('./commands/secret/list.js'), import('./commands/secret/rm.js')]),
  examples('printf %s "$DB_PASSWORD" | drover secret set DB_PASSWORD', 'drover secret list', 'drover secret rm DB_PASSWORD'),
);

const schedule = group(
  'schedule',
  'pause or resume a cron schedule',
  "Pause a workflow's cron schedule (it starts no runs) or resume it (it fires again from now on; fires missed while paused are not caught up). `drover schedules` lists them. See docs/schedules.md.",
  () => Promise.all([import('./commands/schedule/pause.js'), import('./commands/schedule/resume.js')]),
  examples('drover schedules', 'drover schedule pause nightly-backup', 'drover schedule resume nightly-backup'),
);

const conformance = group(
  'conformance',
  'check an implementation of the agent protocol: server, agent',
  'Check a control plane (driven by a scripted agent) or an agent (run against a scripted control plane) against the agent protocol, docs/protocol.md, rule by rule. Prints a pass/fail row per rule and exits 1 when one fails.',
  () => Promise.all([import('./commands/conformance/server.js'), import('./commands/conformance/agent.js')]),
  examples('drover conformance server 127.0.0.1:7400', 'drover conformance agent -- drover agent --insecure --server {addr} --name kit --state-dir {dir}'),
);

/** Every top-level command, in the order `drover --help` lists them. */
const COMMANDS: readonly CommandEntry[] = [
  { name: 'dev', load: () => import('./commands/dev.js') },
  { name: 'server', load: () => import('./commands/server.js') },
  { name: 'agent', load: () => import('./commands/agent.js') },
  { name: 'fleet', load: () => import('./commands/fleet.js') },
  device,
  { name: 'validate', load: () => import('./commands/validate.js') },
  { name: 'plan', load: () => import('./commands/plan.js') },
  { name: 'schema', load: () => import('./commands/schema.js') },
  { name: 'run', load: () => import('./commands/run.js') },
  { name: 'runs', load: () => import('./commands/runs.js') },
  { name: 'status', load: () => import('./commands/status.js') },
  { name: 'logs', load: () => import('./commands/logs.js') },
  { name: 'cancel', load: () => import('./commands/cancel.js') },
  { name: 'approve', load: () => import('./commands/approve.js') },
  { name: 'rerun', load: () => import('./commands/rerun.js') },
  { name: 'schedules', load: () => import('./commands/schedules.js') },
  schedule,
  { name: 'stats', load: () => import('./commands/stats.js') },
  workflow,
  token,
  secret,
  { name: 'audit', load: () => import('./commands/audit.js') },
  conformance,
  { name: 'whoami', load: () => import('./commands/whoami.js') },
  { name: 'completion', load: () => import('./commands/completion.js') },
];

/** A top-level command as `drover --help` lists it, without its module. */
export interface CommandSummary {
  name: string;
  aliases: string[];
  /** The help's left column, e.g. `validate [options] <files...>`. */
  term: string;
  summary: string;
}

/** Defined by the CLI bundle (scripts/build-cli.ts): `describeCommands` of the whole program, taken at build time. */
declare const DROVER_CLI_COMMANDS: CommandSummary[] | undefined;

/** The summaries of a fully registered program's commands, as its help shows them. */
export function describeCommands(program: Command): CommandSummary[] {
  const help = new Help();
  return program.commands.map((c) => ({ name: c.name(), aliases: c.aliases(), term: help.subcommandTerm(c), summary: help.subcommandDescription(c) }));
}

/**
 * The command `args` (process.argv without node and the script) run, if it
 * is a known one: the first operand after the global options, or what
 * `help` is asked about.
 */
function invokedCommand(program: Command, args: readonly string[], known: readonly CommandSummary[] | undefined): CommandEntry | undefined {
  let name: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--') {
      name = args[i + 1];
      break;
    }
    if (!arg.startsWith('-')) {
      name = arg === 'help' ? args[i + 1] : arg;
      break;
    }
    const option = program.options.find((o) => o.long === arg || o.short === arg);
    if (option?.required || option?.optional) i++;
  }
  if (name === undefined) return undefined;
  const canonical = known?.find((c) => c.aliases.includes(name))?.name ?? name;
  return COMMANDS.find((c) => c.name === canonical);
}

/** Lists the commands from their summaries, for help and "did you mean" only: none of them can run. */
function addSummaries(program: Command, summaries: readonly CommandSummary[]): void {
  const terms = new Map(summaries.map((c) => [c.name, c.term]));
  const help = new Help();
  for (const c of summaries) program.command(c.name).aliases(c.aliases).summary(c.summary);
  program.configureHelp({ ...program.configureHelp(), subcommandTerm: (cmd) => terms.get(cmd.name()) ?? help.subcommandTerm(cmd) });
}

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

/**
 * Builds the program for `args` (process.argv without node and the script):
 * the command they run is loaded and registered; when they run none (help,
 * version, a typo), every command is listed from the bundle's summaries, or
 * loaded when there are none (run from the sources). Commander errors are
 * thrown (exitOverride), not exited on.
 */
export async function buildProgram(args: readonly string[] = process.argv.slice(2)): Promise<Command> {
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
  // What every action may read synchronously: the config file, and the YAML writer for -o yaml.
  program.hook('preAction', async (_program, action) => {
    await readConfig();
    await prepareOutput(action);
  });
  const summaries = typeof DROVER_CLI_COMMANDS === 'undefined' ? undefined : DROVER_CLI_COMMANDS;
  const invoked = invokedCommand(program, args, summaries);
  // A completion script is generated from the whole command tree.
  if (invoked?.name === 'completion') for (const command of await Promise.all(COMMANDS.map((c) => c.load()))) command.register(program);
  else if (invoked) (await invoked.load()).register(program);
  else if (summaries) addSummaries(program, summaries);
  else for (const command of await Promise.all(COMMANDS.map((c) => c.load()))) command.register(program);
  return program;
}
