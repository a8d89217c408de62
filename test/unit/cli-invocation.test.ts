import { chmodSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliCommand, withCliCommand } from '../../sdk/cli/invocation.js';
import { formatError } from '../../sdk/cli/report.js';
import { RunNotFoundError } from '../../sdk/index.js';

/** A package with the CLI's script, and a bin dir whose `drover` links to it (as a global install makes). */
function install() {
  const root = mkdtempSync(join(tmpdir(), 'drover-inv-'));
  const script = join(root, 'pkg', 'main.js');
  mkdirSync(join(root, 'pkg'));
  writeFileSync(script, '#!/usr/bin/env node\n');
  chmodSync(script, 0o755);
  const bin = join(root, 'bin');
  mkdirSync(bin);
  symlinkSync(script, join(bin, 'drover'));
  const localBin = join(root, 'app', 'node_modules', '.bin');
  mkdirSync(localBin, { recursive: true });
  symlinkSync(script, join(localBin, 'drover'));
  return { script, bin, localBin };
}

describe('cli invocation - hints name the command the user can type', () => {
  it('cli invocation - `drover` when a drover on PATH is this script, `npx drover` under npx, from node_modules/.bin only, or off PATH', () => {
    const { script, bin, localBin } = install();
    expect(cliCommand({ PATH: ['/usr/bin', bin].join(delimiter) }, join(bin, 'drover'))).toBe('drover');
    expect(cliCommand({ PATH: bin }, script)).toBe('drover');
    expect(cliCommand({ PATH: bin, npm_command: 'exec' }, script)).toBe('npx drover');
    expect(cliCommand({ PATH: localBin }, join(localBin, 'drover'))).toBe('npx drover');
    expect(cliCommand({ PATH: '/usr/bin' }, script)).toBe('npx drover');
  });

  it('cli invocation - commands in backticks are rewritten, other words are not', () => {
    expect(withCliCommand('list runs with `drover runs`; `drover` alone; drover dev: x', 'npx drover')).toBe('list runs with `npx drover runs`; `npx drover` alone; drover dev: x');
    expect(withCliCommand('list runs with `drover runs`', 'drover')).toBe('list runs with `drover runs`');
  });

  it('cli invocation - an error printed by the CLI names the command as it can be typed here', () => {
    // Under vitest no `drover` on PATH is this process, so the hint reads `npx drover`.
    const text = formatError(new RunNotFoundError('no run with id "r-x"', { hint: 'list runs with `drover runs`' }));
    expect(text).toBe('error: no run with id "r-x"\nhint: list runs with `npx drover runs`\n');
  });
});
