/**
 * The built CLI is an esbuild bundle (scripts/build-cli.ts) that lists the
 * commands from summaries taken at build time: they must be the program's
 * own, and the bundle must still find package.json and the programs it
 * starts (its chunks sit where the sources' sdk/cli/ files would).
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../sdk/cli/program.js';
import { cli } from '../helpers/cluster.js';

const ROOT = resolve(import.meta.dirname, '../..');

describe('cli bundle', () => {
  it('cli bundle - --help lists every command exactly as the sources do, and --version is the package version', async () => {
    const help = await cli(['--help']);
    expect(help.code, help.stderr).toBe(0);
    const listed = (await buildProgram([])).helpInformation();
    expect(help.stdout.slice(0, listed.length)).toBe(listed);
    expect(help.stdout).toContain('Environment:');

    const version = await cli(['--version']);
    expect(version.stdout.trim()).toBe((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  });

  it('cli bundle - a command loaded on demand runs, and `server --help` reaches the control plane program', async () => {
    const fleet = await cli(['fleet', '--server', '127.0.0.1:1'], { DROVER_TOKEN: '', DROVER_CA: '' });
    expect(fleet.code).toBe(1);
    expect(fleet.stderr).toContain('no drover control plane answered at 127.0.0.1:1');

    const server = await cli(['server', '--help']);
    expect(server.code, server.stderr).toBe(0);
    expect(server.stdout).toContain('Run the Drover control plane');
  });
});
