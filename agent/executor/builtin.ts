/**
 * Steps that run inside the agent rather than as a process: sleep, http and
 * file (and ssh, in ssh/step.ts). They report through the same result shape as process steps, with
 * exit code 0 on success and 1 on failure, and their outputs inline.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, relative, resolve } from 'node:path';
import type { RunningShell, ShellResult } from './shell.js';

/** Response bodies kept as the `body` output, at most (bytes). */
export const MAX_HTTP_BODY_BYTES = 64 * 1024;

export interface BuiltinContext {
  timeoutMs: number;
  log(stream: 'stdout' | 'stderr', text: string): void;
}

/** What a built-in step's work ends with; a failure's exit code defaults to 1. */
export type Outcome = { ok: true; outputs: Record<string, string> } | { ok: false; message: string; outputs?: Record<string, string>; exitCode?: number };

/** Runs `work` with the step's timeout and cancel, in the result shape of a process step. */
export function builtin(ctx: BuiltinContext, work: (signal: AbortSignal) => Promise<Outcome>): RunningShell {
  const startedAtMs = Date.now();
  const abort = new AbortController();
  let timedOut = false;
  let cancelled = false;
  const timer = ctx.timeoutMs > 0 ? setTimeout(() => ((timedOut = true), abort.abort()), ctx.timeoutMs) : undefined;
  const result = work(abort.signal)
    .catch((err: unknown): Outcome => ({ ok: false, message: abort.signal.aborted ? 'stopped' : (err as Error).message }))
    .then((o): ShellResult => {
      clearTimeout(timer);
      return {
        exitCode: o.ok ? 0 : (o.exitCode ?? 1),
        signal: '',
        startedAtMs,
        endedAtMs: Date.now(),
        cpuSeconds: 0,
        peakRssBytes: 0,
        timedOut,
        cancelled,
        spawnError: o.ok || timedOut || cancelled ? undefined : o.message,
        outputs: o.outputs,
      };
    });
  return { result, cancel: () => ((cancelled = true), abort.abort()) };
}

export function runSleep(ms: number, ctx: BuiltinContext): RunningShell {
  return builtin(ctx, (signal) =>
    new Promise<Outcome>((res, rej) => {
      const t = setTimeout(() => res({ ok: true, outputs: {} }), ms);
      signal.addEventListener('abort', () => (clearTimeout(t), rej(new Error('stopped'))));
    }),
  );
}

export interface HttpSpec {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
  expectStatus: number[];
}

export function runHttp(spec: HttpSpec, ctx: BuiltinContext): RunningShell {
  return builtin(ctx, async (signal) => {
    let url: URL;
    try {
      url = new URL(spec.url);
    } catch {
      return { ok: false, message: `"${spec.url}" is not a URL` };
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return { ok: false, message: `only http and https URLs are supported, got ${url.protocol}` };
    const t0 = Date.now();
    const res = await fetch(url, { method: spec.method, headers: spec.headers, body: spec.body && !['GET', 'HEAD'].includes(spec.method) ? spec.body : undefined, signal });
    const buf = Buffer.from(await res.arrayBuffer());
    const body = buf.subarray(0, MAX_HTTP_BODY_BYTES).toString('utf8');
    ctx.log('stdout', `${spec.method} ${url.href} -> ${res.status} ${res.statusText} (${Date.now() - t0} ms, ${buf.length} bytes)\n`);
    const outputs = {
      status: String(res.status),
      body,
      headers: JSON.stringify(Object.fromEntries(res.headers.entries())),
      ...(buf.length > MAX_HTTP_BODY_BYTES ? { body_truncated: 'true' } : {}),
    };
    const ok = spec.expectStatus.length ? spec.expectStatus.includes(res.status) : res.status >= 200 && res.status < 300;
    if (ok) return { ok: true, outputs };
    return { ok: false, outputs, message: `expected status ${spec.expectStatus.join(' or ') || '2xx'}, got ${res.status} ${res.statusText}` };
  });
}

export interface FileSpec {
  path: string;
  content: string;
  mode: string;
  owner: string;
}

export class FileRootError extends Error {
  override name = 'FileRootError';
}

/**
 * Where a file step may write: `path` resolved (relative paths against the
 * first root), with symlinks in existing parents followed, must stay inside
 * one of the roots.
 */
export function resolveInRoots(path: string, roots: string[]): string {
  if (roots.length === 0) throw new FileRootError('this agent allows no file steps (start it with --file-root DIR)');
  const target = isAbsolute(path) ? resolve(path) : resolve(roots[0], path);
  let parent = dirname(target);
  const missing: string[] = [];
  for (;;) {
    try {
      parent = realpathSync(parent);
      break;
    } catch {
      missing.unshift(basename(parent));
      const up = dirname(parent);
      if (up === parent) break;
      parent = up;
    }
  }
  const real = resolve(parent, ...missing, basename(target));
  for (const root of roots) {
    let r: string;
    try {
      r = realpathSync(root);
    } catch {
      r = resolve(root);
    }
    const rel = relative(r, real);
    if (rel && !rel.startsWith('..') && !isAbsolute(rel)) return real;
  }
  throw new FileRootError(`"${path}" is outside the agent's allowed roots (${roots.join(', ')}); write inside one of them, or add a root with --file-root`);
}

export function runFile(spec: FileSpec, roots: string[], ctx: BuiltinContext): RunningShell {
  return builtin(ctx, async () => {
    let target: string;
    try {
      target = resolveInRoots(spec.path, roots);
    } catch (err) {
      return { ok: false, message: (err as Error).message };
    }
    mkdirSync(dirname(target), { recursive: true });
    const tmp = `${target}.drover-tmp-${process.pid}`;
    const mode = spec.mode ? parseInt(spec.mode, 8) : 0o644;
    writeFileSync(tmp, spec.content, { mode });
    if (spec.owner) {
      const [user, group] = spec.owner.split(':');
      const uid = Number(execFileSync('id', ['-u', user]).toString().trim());
      const gid = group ? Number(execFileSync('getent', ['group', group]).toString().split(':')[2]) : Number(execFileSync('id', ['-g', user]).toString().trim());
      chownSync(tmp, uid, gid);
    }
    renameSync(tmp, target);
    const sha256 = createHash('sha256').update(spec.content).digest('hex');
    ctx.log('stdout', `wrote ${Buffer.byteLength(spec.content)} bytes to ${target} (mode ${mode.toString(8).padStart(4, '0')})\n`);
    return { ok: true, outputs: { path: target, bytes: String(Buffer.byteLength(spec.content)), sha256 } };
  });
}
