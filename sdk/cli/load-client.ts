/**
 * The SDK client, as CLI commands load it. Loading the client (gRPC,
 * protobufjs: about 650 KiB of JavaScript) is most of what `drover fleet`
 * spends before it dials, and most of that is V8 compiling the code; Node 20
 * has no compile cache for ES modules. So the build also writes the client
 * as one CommonJS file, client.cjs beside the CLI's chunks
 * (scripts/build-cli.ts), and this module runs it through vm.Script with a
 * V8 code cache (docs/performance.md):
 *
 * - The cache lives in $XDG_CACHE_HOME/drover (~/.cache/drover), named by a
 *   hash of the bundle, the Node version and the architecture, and holds a
 *   SHA-256 of its payload. It is written once, at the exit of the first
 *   command that loaded the client (so it also holds the functions that
 *   command compiled), with a rename, so a concurrent or killed command
 *   never leaves half a file.
 * - A cache that is missing, damaged, or refused by V8 is only a slower
 *   start: the client compiles from source and the cache is written anew.
 *   Nothing here ever fails a command.
 * - The bundle takes sdk/errors.ts from the CLI (it requires it by
 *   SHARED_ERRORS), so `instanceof DroverError` holds for what it throws.
 *
 * Run from the sources (tsx, tests) there is no client.cjs, and the client
 * is imported as usual.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';
import * as errors from '../errors.js';

type ClientModule = typeof import('../client.js');

/** The module id by which client.cjs requires sdk/errors.ts (scripts/build-cli.ts maps the import to it). */
export const SHARED_ERRORS = 'drover:sdk-errors';

const DIGEST = 32;

/** The directory of the code cache for `env`. */
export function codeCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'drover');
}

/** The client module: client.cjs with its code cache when the CLI is the bundle, else the sources' own. */
export async function loadClient(env: NodeJS.ProcessEnv = process.env): Promise<ClientModule> {
  const bundle = fileURLToPath(new URL('./client.cjs', import.meta.url));
  if (!existsSync(bundle)) return import('../client.js');
  return runBundle(bundle, codeCacheDir(env));
}

function runBundle(file: string, cacheDir: string): ClientModule {
  const source = readFileSync(file, 'utf8');
  const key = createHash('sha256').update(`${process.version} ${process.arch}\n`).update(source).digest('hex').slice(0, 16);
  const cacheFile = join(cacheDir, `client-${key}.v8`);
  const cachedData = readCache(cacheFile);
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file, cachedData });
  if (!cachedData || script.cachedDataRejected) process.once('exit', () => writeCache(cacheDir, cacheFile, script));
  const nodeRequire = createRequire(file);
  const require = Object.assign((id: string): unknown => (id === SHARED_ERRORS ? errors : nodeRequire(id)), nodeRequire);
  const module = { exports: {} as ClientModule };
  (script.runInThisContext() as (...args: unknown[]) => void)(module.exports, require, module, file, dirname(file));
  return module.exports;
}

/** The cache's payload when the file is there and whole (its digest matches), else undefined. */
function readCache(file: string): Buffer | undefined {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch {
    return undefined;
  }
  if (data.length <= DIGEST) return undefined;
  const payload = data.subarray(DIGEST);
  return createHash('sha256').update(payload).digest().equals(data.subarray(0, DIGEST)) ? payload : undefined;
}

/** Writes the cache (digest + payload) by a rename, and removes caches of other bundles or Node versions; best effort. */
function writeCache(dir: string, file: string, script: Script): void {
  try {
    const payload = script.createCachedData();
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, Buffer.concat([createHash('sha256').update(payload).digest(), payload]), { mode: 0o600 });
    renameSync(tmp, file);
    for (const name of readdirSync(dir)) {
      if (/^client-[0-9a-f]+\.v8(\.\d+\.tmp)?$/.test(name) && join(dir, name) !== file) rmSync(join(dir, name), { force: true });
    }
  } catch {
    // A read-only or full disk: the next command compiles from source again.
  }
}
