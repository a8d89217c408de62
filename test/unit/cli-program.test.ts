import { afterEach, describe, expect, it } from 'vitest';
import { buildProgram, describeCommands, type CommandSummary } from '../../sdk/cli/program.js';

/** What the bundle defines at build time (scripts/build-cli.ts); unset, the program loads every command. */
const bundled = globalThis as { DROVER_CLI_COMMANDS?: CommandSummary[] };

afterEach(() => {
  delete bundled.DROVER_CLI_COMMANDS;
});

async function registered(args: string[]): Promise<string[]> {
  return (await buildProgram(args)).commands.map((c) => c.name());
}

describe('cli program', () => {
  it('cli program - only the command being run is registered, found after global options and behind `help`', async () => {
    expect(await registered(['fleet', '-o', 'json'])).toEqual(['fleet']);
    expect(await registered(['--server', '10.0.0.1:7400', '--token', 't', 'runs'])).toEqual(['runs']);
    expect(await registered(['help', 'status'])).toEqual(['status']);
    expect(await registered(['workflow', 'ls'])).toEqual(['workflow']);
  });

  it('cli program - completion registers the whole tree, from which its script is generated', async () => {
    expect(await registered(['completion', 'bash'])).toContain('fleet');
    expect(await registered(['completion', 'bash'])).toHaveLength(25);
  });

  it('cli program - without a command every command is loaded, and the summaries taken from it give the same help', async () => {
    const full = await buildProgram([]);
    const summaries = describeCommands(full);
    expect(summaries.map((c) => c.name)).toEqual(['dev', 'server', 'agent', 'fleet', 'device', 'validate', 'plan', 'schema', 'run', 'runs', 'status', 'logs', 'cancel', 'approve', 'rerun', 'schedules', 'schedule', 'stats', 'workflow', 'token', 'secret', 'audit', 'conformance', 'whoami', 'completion']);
    expect(summaries.find((c) => c.name === 'validate')).toEqual({ name: 'validate', aliases: [], term: 'validate [options] <files...>', summary: 'check workflow files without running them' });

    bundled.DROVER_CLI_COMMANDS = summaries;
    const listed = await buildProgram(['--help']);
    expect(listed.helpInformation()).toBe(full.helpInformation());
  });

  it('cli program - listed from summaries, a mistyped command is refused with the nearest name', async () => {
    bundled.DROVER_CLI_COMMANDS = describeCommands(await buildProgram([]));
    const program = await buildProgram(['flet']);
    let err = '';
    program.configureOutput({ writeErr: (s) => (err += s), writeOut: () => {} });
    await expect(program.parseAsync(['node', 'drover', 'flet'])).rejects.toThrow(/unknown command 'flet'/);
    expect(err).toContain('(Did you mean fleet?)');
  });
});
