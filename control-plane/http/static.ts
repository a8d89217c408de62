/**
 * The dashboard's built files (dist/control-plane/dashboard/, made by
 * `npm run build`). They hold no data, so no credential is asked. Only a
 * plain file inside that folder is served: a path with `..`, a backslash, a
 * NUL or a dot-file segment (before or after percent-decoding) is a 404, and
 * so is anything that resolves outside the folder.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where the dashboard build puts its files, relative to this module in dist/control-plane/http/. */
export const DASHBOARD_DIR = fileURLToPath(new URL('../dashboard/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drover</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
<h1>The dashboard was not built</h1>
<p>This drover server runs from a checkout whose dashboard files are missing
(dist/control-plane/dashboard/). Build them with <code>npm run build</code> and
restart the server. <code>/metrics</code>, <code>/healthz</code> and the
<code>/ws</code> feed work without them.</p>
</body></html>
`;

/** The file a request path names inside `dir`, or undefined when it names none (or tries to leave it). */
export function staticFile(dir: string, pathname: string): string | undefined {
  const rel = pathname === '/' ? 'index.html' : pathname.slice(1);
  let decoded: string;
  try {
    decoded = decodeURIComponent(rel);
  } catch {
    return undefined;
  }
  for (const p of [rel, decoded]) {
    if (p.includes('\\') || p.includes('\0')) return undefined;
    if (p.split('/').some((seg) => seg === '' || seg.startsWith('.'))) return undefined;
  }
  if (!TYPES[extname(decoded)]) return undefined;
  const root = resolve(dir);
  const file = resolve(join(root, decoded));
  if (!file.startsWith(root + sep)) return undefined;
  return file;
}

/** Answers a GET/HEAD for a dashboard file; false when the path is not one (the caller answers 404). */
export function serveStatic(req: IncomingMessage, res: ServerResponse, pathname: string, dir = DASHBOARD_DIR): boolean {
  if (!existsSync(join(dir, 'index.html')) && (pathname === '/' || pathname === '/index.html')) {
    res.writeHead(200, { 'content-type': TYPES['.html'], 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : NOT_BUILT);
    return true;
  }
  const file = staticFile(dir, pathname);
  if (!file) return false;
  let body: Buffer;
  try {
    if (!statSync(file).isFile()) return false;
    body = readFileSync(file);
  } catch {
    return false;
  }
  res.writeHead(200, {
    'content-type': TYPES[extname(file)],
    'content-length': body.length,
    'x-content-type-options': 'nosniff',
    // index.html names the bundle, so it must not be cached past a rebuild.
    'cache-control': 'no-cache',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
  return true;
}
