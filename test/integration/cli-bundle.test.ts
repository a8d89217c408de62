/**
 * The built CLI is an esbuild bundle (scripts/build-cli.ts) that lists the
 * commands from summaries taken at build time: they must be the program's
 * own, and the bundle must still find package.json and the programs it
 * starts (its chunks sit where the sources' sdk/cli/ files would).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

  it('cli bundle - the client loads through a code cache: written once, whole, shared errors; a damaged or unwritable cache only costs time', async () => {
    const home = mkdtempSync(join(tmpdir(), 'drover-cache-'));
    const dir = join(home, 'drover');
    const unreachable = async (env: NodeJS.ProcessEnv) => {
      const r = await cli(['fleet', '--server', '127.0.0.1:1'], { DROVER_TOKEN: '', DROVER_CA: '', ...env });
      // The CLI recognises the bundle's error as a DroverError: its message, its hint, its exit code.
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain('error: no drover control plane answered at 127.0.0.1:1');
      expect(r.stderr).toContain('hint: ');
    };
    const caches = () => readdirSync(dir).filter((f) => f.endsWith('.v8'));
    const whole = (file: string) => {
      const data = readFileSync(file);
      return data.length > 1000 && createHash('sha256').update(data.subarray(32)).digest().equals(data.subarray(0, 32));
    };

    await unreachable({ XDG_CACHE_HOME: home });
    expect(caches()).toHaveLength(1);
    const file = join(dir, caches()[0]);
    expect(whole(file)).toBe(true);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const written = statSync(file).mtimeMs;
    await unreachable({ XDG_CACHE_HOME: home });
    expect(statSync(file).mtimeMs).toBe(written); // accepted, not rewritten

    const damaged = readFileSync(file);
    damaged[damaged.length >> 1] ^= 0xff;
    writeFileSync(file, damaged);
    await unreachable({ XDG_CACHE_HOME: home });
    expect(caches()).toEqual([file.split('/').pop()]);
    expect(whole(file)).toBe(true); // written anew

    writeFileSync(join(home, 'not-a-dir'), '');
    await unreachable({ XDG_CACHE_HOME: join(home, 'not-a-dir') });
  });
});
