/**
 * The single-executable agent (dist/drover-agent-linux-<arch>) for
 * integration tests: built with `npm run build:agent` when missing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

/** Path of the agent binary for this machine's architecture, building it first when it is missing. */
export function agentBinary(): string {
  const path = join(ROOT, 'dist', `drover-agent-linux-${process.arch}`);
  if (existsSync(path)) return path;
  const res = spawnSync(process.execPath, [join(ROOT, 'node_modules/tsx/dist/cli.mjs'), join(ROOT, 'scripts/build-agent.ts')], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  if (res.status !== 0 || !existsSync(path)) {
    throw new Error(`could not build the agent binary (npm run build:agent):\n${res.stdout}${res.stderr}`);
  }
  return path;
}
