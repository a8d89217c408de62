/** Counting helpers for the fault suite: side-effect files and the control plane's stored logs. */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, it } from 'vitest';
import { tempDir } from '../helpers/cluster.js';
import { join } from 'node:path';

/** Non-empty lines of a side-effect file (empty when it does not exist yet). */
export function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

export interface StoredLog {
  t: number;
  step: string;
  attempt: string;
  stream: string;
  text: string;
}

/** The log records the control plane stored for a run, straight from its data dir. */
export async function storedLogs(dataDir: string, runId: string): Promise<StoredLog[]> {
  return lines(join(dataDir, 'logs', `${runId}.ndjson`)).map((l) => JSON.parse(l) as StoredLog);
}

/**
 * Small file systems for disk-fault cases: `mountTmpfs` mounts one (unmounted
 * after the test file), `mountable` says whether this machine can (root and a
 * working mount), and `whenMountable` is `it`, or `it.skip` with a message
 * where it cannot, except under CI=true, where such a case fails instead.
 */
const mounted: string[] = [];
afterAll(() => {
  for (const m of mounted.reverse()) {
    try {
      execFileSync('umount', ['-l', m]);
    } catch {
      // already gone
    }
  }
});

export function mountTmpfs(options: string): string {
  const dir = tempDir('drover-tmpfs-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]);
  mounted.push(dir);
  return dir;
}

/** Remembers a mount made otherwise (a loop image), to unmount it after the test file. */
export function unmountLater(dir: string): void {
  mounted.push(dir);
}

/** Why this machine cannot mount a file system for a test ('' when it can). */
export function cannotMount(): string {
  if (process.getuid?.() !== 0) return 'not root: mounting a small file system needs root';
  const probe = tempDir('drover-mount-probe-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'pipe' });
    execFileSync('umount', [probe]);
    return '';
  } catch (err) {
    return `mount -t tmpfs failed: ${(err as Error).message.split('\n')[0]}`;
  }
}

export function whenMountable(what: string): { problem: string; maybe: typeof it | typeof it.skip } {
  const problem = cannotMount();
  if (problem) process.stderr.write(`\n${what} ${process.env.CI === 'true' ? 'FAIL' : 'skipped'}: ${problem}\n`);
  return { problem, maybe: problem && process.env.CI !== 'true' ? it.skip : it };
}
