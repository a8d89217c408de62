/**
 * `npm run build:dashboard` (part of `npm run build`): the browser dashboard
 * as three static files the control plane serves from its HTTP port,
 * dist/control-plane/dashboard/{index.html,app.js,app.css}. esbuild bundles
 * control-plane/dashboard/main.tsx with preact and dagre and minifies it;
 * nothing is fetched at run time (no CDN, no web fonts), and nothing is built
 * when the server starts.
 */
import { copyFileSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';

const ROOT = resolve(import.meta.dirname, '..');
const SRC = join(ROOT, 'control-plane/dashboard');
const OUT = join(ROOT, 'dist/control-plane/dashboard');

const started = performance.now();
mkdirSync(OUT, { recursive: true });
await build({
  entryPoints: [join(SRC, 'main.tsx')],
  outfile: join(OUT, 'app.js'),
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  tsconfig: join(SRC, 'tsconfig.json'),
  legalComments: 'none',
  logLevel: 'warning',
});
copyFileSync(join(SRC, 'index.html'), join(OUT, 'index.html'));

const html = readFileSync(join(OUT, 'index.html'), 'utf8');
if (/\bsrc="https?:|\bhref="https?:/.test(html)) throw new Error('dashboard index.html refers to a remote URL; every asset must be built in');
const kib = (f: string) => `${(statSync(join(OUT, f)).size / 1024).toFixed(0)} KiB`;
process.stdout.write(`dashboard: app.js ${kib('app.js')}, app.css ${kib('app.css')} in ${Math.round(performance.now() - started)} ms\n`);
