/**
 * `npm run build:agent`: the agent as one executable file that runs on a host
 * without Node, npm or network: dist/drover-agent-linux-<arch>.
 *
 * 1. esbuild bundles agent/main.ts and every npm dependency into one CommonJS
 *    file (a single executable application's main script must be CommonJS),
 *    with DROVER_BUILD = {version, commit} defined (agent/version.ts).
 * 2. The bundle is checked: it may require Node built-ins only, so nothing is
 *    read from node_modules or from .proto files at run time.
 * 3. `node --experimental-sea-config` turns it into a blob, which postject
 *    injects into a copy of this Node binary (Node's single executable
 *    application support). Everything is local: nothing is downloaded.
 *
 * Only the architecture of the Node running this script can be produced (the
 * blob and the Node binary must match, and no other Node binary is at hand).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build, type Metafile, type Plugin } from 'esbuild';

const ROOT = resolve(import.meta.dirname, '..');
const ENTRY = join(ROOT, 'agent/main.ts');
/** The fuse postject flips so the Node binary looks for its injected blob (Node's documented value). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
/** `uname -m` spelling used in the file name, by Node's process.arch. */
const ARCHES: Partial<Record<NodeJS.Architecture, string>> = { x64: 'x64', arm64: 'arm64' };

/**
 * Optional packages that dependencies require inside try/catch: never
 * installed on Linux (systeminformation's macOS temperature sensors), or
 * native addons that cannot be part of a single file (ssh2's `cpu-features`
 * and its `sshcrypto.node` build). They are bundled as a module that throws
 * MODULE_NOT_FOUND, exactly what an agent without them sees, instead of
 * staying a runtime require; ssh2 then uses Node's own crypto.
 */
const ABSENT_OPTIONAL = ['osx-temperature-sensor', 'macos-temperature-sensor', 'cpu-features'];
/** Native addon files (`*.node`), required by path. */
const NATIVE_ADDON = /\.node$/;

const absentOptional: Plugin = {
  name: 'absent-optional',
  setup(b) {
    const filter = new RegExp(`^(${ABSENT_OPTIONAL.join('|')})$`);
    b.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'absent-optional' }));
    b.onResolve({ filter: NATIVE_ADDON }, (args) => ({ path: args.path, namespace: 'absent-optional' }));
    b.onLoad({ filter: /.*/, namespace: 'absent-optional' }, (args) => ({
      contents: `throw Object.assign(new Error("Cannot find module '${args.path}'"), { code: 'MODULE_NOT_FOUND' });`,
      loader: 'js',
    }));
  },
};

/** Runs a build tool, showing its output only when it fails. */
function quiet(cmd: string, args: string[], cwd: string): void {
  const res = spawnSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (res.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${res.error?.message ?? `exit ${res.status}`}):\n${res.stdout}${res.stderr}`);
  }
}

/**
 * Drops the symbol and debug sections of the copied Node binary (about 12
 * MiB; the dynamic symbols that native addons link against stay) when
 * binutils' `strip` is installed. Without it the binary is just larger.
 */
function strip(file: string): boolean {
  return spawnSync('strip', [file], { stdio: 'ignore' }).status === 0;
}

function commit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Node built-ins, with and without the `node:` scheme. */
const BUILTINS = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

/** Fails when the bundle would load anything that is not a Node built-in at run time. */
function checkSelfContained(meta: Metafile): void {
  const outside = new Set<string>();
  for (const output of Object.values(meta.outputs)) {
    for (const imp of output.imports) {
      if (imp.external && !BUILTINS.has(imp.path)) outside.add(`${imp.path} (${imp.kind})`);
    }
  }
  const protoFiles = Object.keys(meta.inputs).filter((p) => p.endsWith('.proto'));
  if (outside.size > 0 || protoFiles.length > 0) {
    throw new Error(
      `the agent bundle is not self-contained: it would load ${[...outside, ...protoFiles].join(', ')} at run time; ` +
        'bundle the module (or replace the dynamic require) so the binary needs no files beside it',
    );
  }
}

async function main(): Promise<void> {
  const arch = ARCHES[process.arch];
  if (process.platform !== 'linux' || !arch) {
    throw new Error(`building the agent binary needs Linux on x64 or arm64; this is ${process.platform}/${process.arch}`);
  }
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const build_ = { version, commit: commit() };
  const work = mkdtempSync(join(tmpdir(), 'drover-build-agent-'));
  const outDir = join(ROOT, 'dist');
  const target = join(outDir, `drover-agent-linux-${arch}`);
  const started = Date.now();
  try {
    const bundle = join(work, 'drover-agent.cjs');
    const result = await build({
      entryPoints: [ENTRY],
      outfile: bundle,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      minifyWhitespace: true,
      minifySyntax: true,
      keepNames: true,
      legalComments: 'none',
      metafile: true,
      plugins: [absentOptional],
      logLevel: 'silent',
      define: {
        DROVER_BUILD: JSON.stringify(build_),
        // agent/version.ts reads package.json through import.meta.url only when DROVER_BUILD is undefined.
        'import.meta.url': '"file:///drover-agent"',
      },
    });
    for (const w of result.warnings) process.stderr.write(`esbuild warning: ${w.text}${w.location ? ` (${w.location.file}:${w.location.line})` : ''}\n`);
    checkSelfContained(result.metafile);

    const blob = join(work, 'sea-prep.blob');
    const seaConfig = join(work, 'sea-config.json');
    writeFileSync(
      seaConfig,
      JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true, useSnapshot: false }),
    );
    quiet(process.execPath, ['--experimental-sea-config', seaConfig], work);

    mkdirSync(outDir, { recursive: true });
    const partial = `${target}.partial`;
    copyFileSync(process.execPath, partial);
    chmodSync(partial, 0o755);
    const stripped = strip(partial);
    // postject's CLI, in a child process: its ELF library prints harmless warnings we only show on failure.
    const postjectCli = createRequire(import.meta.url).resolve('postject/dist/cli.js');
    quiet(process.execPath, [postjectCli, partial, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE], work);
    renameSync(partial, target);

    const printed = execFileSync(target, ['--version'], { encoding: 'utf8', env: { PATH: '/nonexistent' } }).trim();
    const mb = (statSync(target).size / 2 ** 20).toFixed(1);
    process.stdout.write(
      `built ${target} (${mb} MiB${stripped ? '' : ', not stripped: install binutils for a smaller file'}, bundle ${(statSync(bundle).size / 1024).toFixed(0)} KiB) in ${((Date.now() - started) / 1000).toFixed(1)} s: ${printed}\n`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
    rmSync(`${target}.partial`, { force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`build:agent failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
