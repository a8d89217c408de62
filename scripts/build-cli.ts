/**
 * Part of `npm run build`, after tsc: the `drover` CLI as an esbuild bundle
 * in dist/sdk/cli/ (main.js, the `bin`, and its chunks beside it), so that a
 * command starts without resolving and reading hundreds of files from
 * node_modules (docs/performance.md).
 *
 * - ESM with code splitting: every `import()` in the sources (a command's
 *   module in program.ts, the client in context.ts) becomes a chunk loaded
 *   only when that code runs. `drover --version` and `drover --help` load
 *   main.js and a few small chunks; this script fails when one of the
 *   packages in HEAVY gets into them, naming the import that pulled it in.
 * - The chunks sit beside main.js, at the depth of the sources' sdk/cli/, so
 *   the `import.meta.url`-relative paths (../../control-plane/main.js,
 *   ../../../package.json, the agent binaries in dist/) hold.
 * - DROVER_CLI_COMMANDS is the list of top-level commands with their help
 *   summaries, taken from the program itself at build time: `drover --help`
 *   lists them without loading their modules.
 * - ssh2 (with its optional native addons) and node-ssh stay in
 *   node_modules, loaded by `drover agent install` only.
 * - CommonJS dependencies call `require`: every chunk gets one from
 *   createRequire.
 * - client.cjs: the SDK client (sdk/client.ts with gRPC and protobufjs) once
 *   more, as one CommonJS file, which sdk/cli/load-client.ts runs with a V8
 *   code cache. It takes sdk/errors.ts from the CLI (required as
 *   SHARED_ERRORS), so both see the same error classes.
 *
 * The control plane and the agent are not in it: `drover server`, `drover
 * agent` and `drover dev` load or spawn dist/control-plane/main.js and
 * dist/agent/main.js (sdk/cli/entries.ts), which tsc builds.
 */
import { rmSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { build, type BuildOptions, type Message, type Metafile, type Plugin } from 'esbuild';
import { buildProgram, describeCommands } from '../sdk/cli/program.js';
import { SHARED_ERRORS } from '../sdk/cli/load-client.js';

const ROOT = resolve(import.meta.dirname, '..');
const OUT = join(ROOT, 'dist/sdk/cli');
const EXTERNAL = ['node-ssh', 'ssh2', 'cpu-features'];
/** Packages `drover --version` and `drover --help` must not load. */
const HEAVY = ['@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs', 'yaml', 'zod', '@marcbachmann/cel-js', 'node-ssh', 'ssh2', 'log-update'];

function packageOf(input: string): string | undefined {
  return /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input)?.[1];
}

/** The inputs in main.js and the chunks it imports statically. */
function startupInputs(meta: Metafile): Set<string> {
  const main = Object.keys(meta.outputs).find((o) => o.endsWith('/main.js'))!;
  const outputs = new Set<string>();
  const queue = [main];
  while (queue.length > 0) {
    const o = queue.pop()!;
    if (outputs.has(o)) continue;
    outputs.add(o);
    for (const imp of meta.outputs[o].imports) if (imp.kind === 'import-statement' && !imp.external) queue.push(imp.path);
  }
  return new Set([...outputs].flatMap((o) => Object.keys(meta.outputs[o].inputs)));
}

/** How `to` is reached from the entry by static imports, as a chain of files, for the error message. */
function importChain(meta: Metafile, entry: string, to: string): string[] {
  const from = new Map<string, string>([[entry, '']]);
  const queue = [entry];
  while (queue.length > 0) {
    const at = queue.shift()!;
    if (at === to) break;
    for (const imp of meta.inputs[at]?.imports ?? []) {
      if (imp.kind !== 'import-statement' && imp.kind !== 'require-call') continue;
      if (!from.has(imp.path)) {
        from.set(imp.path, at);
        queue.push(imp.path);
      }
    }
  }
  const chain: string[] = [];
  for (let at: string | undefined = to; at; at = from.get(at) || undefined) chain.unshift(at);
  return chain;
}

function checkStartup(meta: Metafile, entry: string): void {
  const heavy = [...startupInputs(meta)].filter((i) => HEAVY.includes(packageOf(i) ?? ''));
  const byPackage = new Map(heavy.map((i) => [packageOf(i)!, i]));
  if (byPackage.size === 0) return;
  const chains = [...byPackage].map(([pkg, input]) => `  ${pkg}: ${importChain(meta, entry, input).join(' -> ')}`);
  throw new Error(
    `drover --version and --help would load ${[...byPackage.keys()].join(', ')}:\n${chains.join('\n')}\n` +
      'import it where it is used instead, with `await import(...)` in the command\'s action (docs/performance.md)',
  );
}

/** What the CLI bundle and client.cjs are both built with. */
const COMMON = {
  absWorkingDir: ROOT,
  bundle: true,
  platform: 'node',
  target: 'node20',
  external: EXTERNAL,
  minifyWhitespace: true,
  minifySyntax: true,
  keepNames: true,
  legalComments: 'none',
  metafile: true,
  logLevel: 'silent',
} satisfies BuildOptions;

function printWarnings(warnings: readonly Message[], what: string): void {
  for (const w of warnings) process.stderr.write(`esbuild warning${what}: ${w.text}${w.location ? ` (${w.location.file}:${w.location.line})` : ''}\n`);
}

/** The client bundle requires sdk/errors.ts by SHARED_ERRORS instead of holding a copy of it. */
const sharedErrors: Plugin = {
  name: 'drover-shared-errors',
  setup(b) {
    const errors = join(ROOT, 'sdk/errors.js');
    b.onResolve({ filter: /errors\.js$/ }, (args) => (resolve(args.resolveDir, args.path) === errors ? { path: SHARED_ERRORS, external: true } : undefined));
  },
};

/** dist/sdk/cli/client.cjs (see the header). */
async function buildClient(): Promise<number> {
  const result = await build({
    entryPoints: ['sdk/client.ts'],
    outfile: join(OUT, 'client.cjs'),
    ...COMMON,
    format: 'cjs',
    plugins: [sharedErrors],
  });
  printWarnings(result.warnings, ' (client.cjs)');
  const inputs = Object.keys(result.metafile.inputs);
  if (inputs.some((i) => i === 'sdk/errors.ts')) throw new Error('client.cjs holds its own copy of sdk/errors.ts: the CLI would not recognise its errors (instanceof DroverError)');
  return Object.values(result.metafile.outputs)[0].bytes;
}

async function main(): Promise<void> {
  const started = Date.now();
  const commands = describeCommands(await buildProgram([]));
  rmSync(OUT, { recursive: true, force: true });
  const entry = 'sdk/cli/main.ts';
  const result = await build({
    entryPoints: [entry],
    outdir: OUT,
    ...COMMON,
    splitting: true,
    format: 'esm',
    define: { DROVER_CLI_COMMANDS: JSON.stringify(commands) },
    banner: { js: "import { createRequire as __droverCreateRequire } from 'node:module'; const require = __droverCreateRequire(import.meta.url);" },
  });
  printWarnings(result.warnings, '');
  checkStartup(result.metafile, entry);
  const outputs = Object.entries(result.metafile.outputs).filter(([f]) => f.endsWith('.js'));
  const startup = [...startupInputs(result.metafile)].length;
  const kib = (n: number) => `${(n / 1024).toFixed(0)} KiB`;
  const total = outputs.reduce((n, [, o]) => n + o.bytes, 0);
  const mainBytes = outputs.find(([f]) => f.endsWith('/main.js'))![1].bytes;
  const clientBytes = await buildClient();
  process.stdout.write(
    `built ${relative(ROOT, OUT)}/main.js (${kib(mainBytes)}; ${outputs.length - 1} chunks, ${kib(total)} in all; ${startup} modules at start-up) and client.cjs (${kib(clientBytes)}) in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`build:cli failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
