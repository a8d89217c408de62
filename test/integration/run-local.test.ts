/**
 * `drover run FILE --local`: a control plane and one agent of its own, as
 * real processes in a temporary directory, every step on that agent, and
 * nothing left behind afterwards, also after Ctrl-C or SIGTERM.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, ENTRY, tempDir, waitFor, workflowFile } from '../helpers/cluster.js';

/** No control plane anywhere: only what --local starts. */
const env = (tmp: string) => ({ TMPDIR: tmp, DROVER_ADDR: '127.0.0.1:1', DROVER_TOKEN: '', DROVER_CA: '', DROVER_CONFIG: '', XDG_CONFIG_HOME: tmp });

/** Live processes whose command line mentions `text`. */
function processesWith(text: string): string[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)
    .flatMap((p) => {
      try {
        const cmd = readFileSync(join('/proc', p, 'cmdline'), 'utf8').replaceAll('\0', ' ');
        return cmd.includes(text) ? [`${p}: ${cmd}`] : [];
      } catch {
        return [];
      }
    });
}

/** The temporary directory is empty again and no process it started is left. */
async function nothingLeft(tmp: string) {
  await waitFor(() => processesWith(tmp).length === 0, 10_000, () => `processes of the local run to end: ${processesWith(tmp).join('\n')}`);
  expect(readdirSync(tmp).filter((f) => f.startsWith('drover-local-'))).toEqual([]);
}

describe('run --local - one workflow on this machine', () => {
  it('run --local - the onboarding example succeeds on the one local agent, with a notice, and leaves no process or temp dir', async () => {
    const tmp = tempDir('drover-local-test-');
    const evidence = join(tmp, 'evidence');
    const res = await cli(['run', 'examples/onboarding.yaml', '--local', '-p', 'username=alice', '-p', `evidence_dir=${evidence}`], env(tmp), 60_000);
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stderr).toContain('notice: every step runs on local; targets ignored: create-account (role=directory), provision-laptop (role=assets)');
    expect(res.stdout).toMatch(/run r-\S+ succeeded in /);
    expect(res.stdout).toMatch(/^welcome-pack\s+local\s+succeeded/m);
    expect(JSON.parse(readFileSync(join(evidence, 'accounts', 'alice.json'), 'utf8'))).toMatchObject({ user: 'alice', host: 'local' });
    await nothingLeft(tmp);
  });

  it('run --local - a failing run exits 1; a bad param is refused before anything starts, with the file\'s line', async () => {
    const tmp = tempDir('drover-local-test-');
    const failed = await cli(['run', 'examples/failing.yaml', '--local'], env(tmp), 60_000);
    expect(failed.code, failed.stdout + failed.stderr).toBe(1);
    expect(failed.stdout).toMatch(/run r-\S+ failed/);
    await nothingLeft(tmp);

    const bad = await cli(['run', 'examples/onboarding.yaml', '--local', '-p', 'username=Not Valid'], env(tmp));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('error: examples/onboarding.yaml: 1 problem with the params');
    expect(bad.stderr).toMatch(/params\.username \(\d+:\d+\): param "username" must match/);
    expect(readdirSync(tmp).filter((f) => f.startsWith('drover-local-'))).toEqual([]);

    const hash = await cli(['run', 'examples/onboarding.yaml', '--local', '--plan-hash', 'abc'], env(tmp));
    expect(hash.code).toBe(1);
    expect(hash.stderr).toContain('error: --plan-hash does not go with --local');
  });

  it('run --local - stored secrets the steps name come from the environment, masked in the output; a missing one is refused before anything starts', async () => {
    const tmp = tempDir('drover-local-test-');
    const file = workflowFile(tmp, 'secret.yaml', 'name: uses-secret\nsteps:\n  - id: s\n    secrets: [API_KEY]\n    run: test "$API_KEY" = hunter2 && echo "key $API_KEY"\n');
    const ok = await cli(['run', file, '--local'], { ...env(tmp), API_KEY: 'hunter2' }, 60_000);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stderr).toContain('notice: secrets from the environment: API_KEY');
    expect(ok.stdout).toContain('key ***');
    expect(ok.stdout).not.toContain('hunter2');
    await nothingLeft(tmp);

    const missing = await cli(['run', file, '--local'], { ...env(tmp), API_KEY: undefined as unknown as string });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('error: the workflow uses the stored secret API_KEY, which --local reads from the environment');
    expect(readdirSync(tmp).filter((f) => f.startsWith('drover-local-'))).toEqual([]);
  });

  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`run --local - ${signal} while a step runs stops the control plane, the agent and the step, removes the temp dir, exits ${code}`, async () => {
      const tmp = tempDir('drover-local-test-');
      const file = workflowFile(tmp, 'slow.yaml', 'name: slow\nsteps:\n  - id: wait\n    run: sleep 3600\n');
      const child = spawn(process.execPath, [ENTRY.cli, 'run', file, '--local'], { env: { ...process.env, ...env(tmp) }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
      await waitFor(() => /wait\s+running\s+on local/.test(out) && processesWith('sleep 3600').length > 0, 30_000, () => `the step to run:\n${out}`);
      expect(readdirSync(tmp).filter((f) => f.startsWith('drover-local-'))).toHaveLength(1);
      child.kill(signal);
      expect(await exited, out).toBe(code);
      await nothingLeft(tmp);
      expect(processesWith('sleep 3600')).toEqual([]);
      expect(existsSync(tmp)).toBe(true);
    });
  }
});
