/**
 * Disk faults under the control plane's data dir, with real processes and a
 * real file system (docs/reliability.md, "Disk faults"):
 *
 * - ENOSPC: the data dir is on an 8 MiB tmpfs, filled by a filler file while
 *   a step prints numbered lines. The control plane stays up, refuses new
 *   runs with UNAVAILABLE (and starts none of them), and once the filler is
 *   gone the run finishes by itself, with no restart, every line stored once.
 * - EROFS: the data dir is on an ext4 image mounted errors=remount-ro whose
 *   file system is then made to fail (sysfs trigger_fs_error), so every write
 *   gets EROFS. Same checks while read-only; Linux cannot turn such a file
 *   system (nor a tmpfs whose files are open for writing: `mount -o
 *   remount,ro` says busy) back to read-write while it is mounted, so the
 *   recovery is the operator's: stop the control plane (it must exit
 *   promptly), fsck, mount, start it again. The run then finishes, every
 *   line once, no phantom run.
 *
 * Needs root (mount); skipped with a message otherwise, failed under CI=true.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DroverClient, UnavailableError, type Run } from '../../sdk/index.js';
import { cli, isAlive, startAgent, startServer, tempDir, waitFor, type ServerProc } from '../helpers/cluster.js';
import { mountTmpfs, storedLogs, unmountLater, whenMountable } from './fault-helpers.js';

const LINES = 1500;
const images: string[] = [];

afterAll(() => {
  for (const img of images) rmSync(img, { force: true });
});

const { problem, maybe } = whenMountable('disk-full fault tests');

function workflowFile(dir: string, name: string, lines: number): string {
  const file = join(dir, `${name}.json`);
  // Numbered lines, a few at a time, so the step logs all through the fault.
  const run = `i=0; while [ $i -lt ${lines} ]; do i=$((i+1)); echo "${name} line $i"; case $((i % 10)) in 0) sleep 0.1;; esac; done`;
  writeFileSync(file, JSON.stringify({ name, steps: [{ id: 'print', target: { labels: { pool: 'disk' } }, run }] }));
  return file;
}

/** Every line the run stored, read from the data dir: each must be a whole record (storedLogs parses each). */
async function expectEveryLineOnce(dataDir: string, run: Run, name: string, lines: number) {
  const texts = (await storedLogs(dataDir, run.id)).filter((l) => l.step === 'print').map((l) => l.text);
  expect(texts.length).toBe(lines);
  expect(texts).toEqual(Array.from({ length: lines }, (_, i) => `${name} line ${i + 1}\n`));
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

async function storedCount(dataDir: string, runId: string): Promise<number> {
  return (await storedLogs(dataDir, runId).catch(() => [])).length;
}

/** While the disk fails: the control plane is up, reads work, launches are refused and start nothing. */
async function expectRefusals(server: ServerProc, client: DroverClient, file: string, code: string) {
  await waitFor(() => server.output().includes(`cannot write the data dir ${server.dataDir} (${code}`), 20_000, () => `the control plane to notice ${code}:\n${server.output().slice(-3000)}`);
  expect(isAlive(server.child.pid!)).toBe(true);
  const refused = await client.runs.launch(file).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(refused).toBeInstanceOf(UnavailableError);
  expect((refused as UnavailableError).message).toMatch(new RegExp(`^the control plane cannot write its data dir ${server.dataDir} \\(${code}: [^)]+\\); no run was started$`));
  const viaCli = await cli(['run', file], server.env);
  expect(viaCli.code).toBe(1);
  expect(viaCli.stderr).toContain(`error: the control plane cannot write its data dir ${server.dataDir} (${code}`);
  expect(viaCli.stderr).toContain('hint: free space or fix the disk; the control plane retries by itself and takes new runs again once a write succeeds');
  expect((await client.runs.list()).filter((r) => r.workflow === 'later')).toEqual([]);
  expect(isAlive(server.child.pid!)).toBe(true);
}

describe('fault - disk faults on the control plane', () => {
  maybe('fault - a full disk (ENOSPC): no crash, no phantom run, no lost or doubled line; it resumes by itself when space is back', async () => {
    if (problem) throw new Error(problem);
    const mnt = mountTmpfs('size=8m');
    const dataDir = join(mnt, 'data');
    const server = await startServer({ dataDir });
    startAgent(server, 'disk-a1', { pool: 'disk' });
    const client = new DroverClient(server.clientOptions);
    await waitFor(async () => (await client.fleet.list()).some((a) => a.state === 'connected'), 20_000, () => 'the agent');
    const wf = tempDir('drover-disk-wf-');
    const printing = await client.runs.launch(workflowFile(wf, 'chatty', LINES));
    await waitFor(async () => (await storedCount(dataDir, printing.id)) >= 100, 20_000, () => 'the step to log');

    const free = Number(statfsSync(mnt).bavail) * Number(statfsSync(mnt).bsize);
    const filler = join(mnt, 'filler');
    execFileSync('fallocate', ['-l', String(free), filler]);
    const fullAt = Date.now();
    await expectRefusals(server, client, workflowFile(wf, 'later', 5), 'ENOSPC');
    const storedWhileFull = await storedCount(dataDir, printing.id);
    // The step keeps printing meanwhile; its lines wait in the control plane's memory and the agent's journal.
    await new Promise((r) => setTimeout(r, 3000));
    rmSync(filler);
    const freedAt = Date.now();

    const run = await within(printing.wait(), 90_000, 'the run to finish after space was back');
    expect(run.status).toBe('succeeded');
    await expectEveryLineOnce(dataDir, run, 'chatty', LINES);
    await waitFor(async () => (await client.fleet.get('disk-a1')).heartbeat?.journalUnacked === 0, 30_000, () => "the agent's journal to be acknowledged");
    const again = await within((await client.runs.launch(workflowFile(wf, 'later', 5))).wait(), 60_000, 'a new run to finish');
    expect(again.status).toBe('succeeded');
    expect((await client.runs.list()).map((r) => r.id).sort()).toEqual([printing.id, again.id].sort());
    expect(isAlive(server.child.pid!)).toBe(true);
    console.log(
      `fault disk-full: ENOSPC for ${freedAt - fullAt} ms while the step logged (${storedWhileFull} of ${LINES} lines stored when it filled); ` +
        `the run finished ${Date.now() - freedAt} ms after space was back, all ${LINES} lines stored once; 2 launches refused with UNAVAILABLE, none started`,
    );
    client.close();
    await server.stop();
  });

  maybe('fault - a file system turned read-only (EROFS): no crash, no phantom run; after fsck and a restart nothing is lost or doubled', async () => {
    if (problem) throw new Error(problem);
    const img = join(tempDir('drover-ext4-'), 'data.img');
    images.push(img);
    execFileSync('truncate', ['-s', '64M', img]);
    execFileSync('mkfs.ext4', ['-q', '-F', '-O', '^has_journal', img]);
    const mnt = tempDir('drover-ext4-mnt-');
    const mountImage = () => execFileSync('mount', ['-o', 'loop,errors=remount-ro', img, mnt]);
    mountImage();
    unmountLater(mnt);
    const dataDir = join(mnt, 'data');
    mkdirSync(dataDir);
    let server = await startServer({ dataDir });
    startAgent(server, 'disk-a2', { pool: 'disk' });
    let client = new DroverClient(server.clientOptions);
    await waitFor(async () => (await client.fleet.list()).some((a) => a.state === 'connected'), 20_000, () => 'the agent');
    const wf = tempDir('drover-erofs-wf-');
    const printing = await client.runs.launch(workflowFile(wf, 'chatty', LINES));
    await waitFor(async () => (await storedCount(dataDir, printing.id)) >= 100, 20_000, () => 'the step to log');

    const device = basename(execFileSync('findmnt', ['-n', '-o', 'SOURCE', mnt], { encoding: 'utf8' }).trim());
    writeFileSync(`/sys/fs/ext4/${device}/trigger_fs_error`, 'drover fault test\n');
    const roAt = Date.now();
    await expectRefusals(server, client, workflowFile(wf, 'later', 5), 'EROFS');
    await new Promise((r) => setTimeout(r, 2000));

    // Stopping must not hang on the disk: one last try, then exit.
    const stopAt = Date.now();
    await server.stop('SIGTERM');
    const stopMs = Date.now() - stopAt;
    expect(server.child.exitCode).toBe(0);
    expect(stopMs).toBeLessThan(5000);
    client.close();
    execFileSync('umount', [mnt]);
    // Exit 1 and 2: errors found and corrected (the error the trigger recorded).
    const fsck = spawnSync('e2fsck', ['-f', '-y', img], { encoding: 'utf8' });
    expect(fsck.status, fsck.stdout + fsck.stderr).toBeLessThanOrEqual(2);
    mountImage();
    server = await startServer({ dataDir, listen: server.address });
    client = new DroverClient(server.clientOptions);

    const run = await waitFor(
      async () => {
        const r = await client.runs.get(printing.id);
        return r.status === 'succeeded' || r.status === 'failed' ? r : undefined;
      },
      90_000,
      () => 'the run to finish after the restart',
    );
    expect(run.status).toBe('succeeded');
    await expectEveryLineOnce(dataDir, run, 'chatty', LINES);
    const again = await within((await client.runs.launch(workflowFile(wf, 'later', 5))).wait(), 60_000, 'a new run to finish');
    expect(again.status).toBe('succeeded');
    expect((await client.runs.list()).map((r) => r.id).sort()).toEqual([printing.id, again.id].sort());
    console.log(`fault disk-erofs: read-only for ${stopAt - roAt} ms; the control plane stopped in ${stopMs} ms; after fsck and a restart the run finished with all ${LINES} lines stored once; 2 launches refused, none started`);
    client.close();
    await server.stop();
  });
});
