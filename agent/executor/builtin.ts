/**
 * Steps that run inside the agent rather than as a process: sleep, http and
 * file (and ssh, in ssh/step.ts). They report through the same result shape as process steps, with
 * exit code 0 on success and 1 on failure, and their outputs inline.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, realpathSync } from 'node:fs';
import { basename, dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { EgressPolicy } from './egress.js';
import { octal, parseFileMode, resolveOwner, writeAtomically } from './file-write.js';
import { httpExchange } from './http-request.js';
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

/** How this agent runs http steps. */
export interface HttpStepOptions {
  /** Where http steps may connect (--http-allow, --http-deny); absent: the default policy (link-local and metadata addresses denied). */
  egress?: EgressPolicy;
}

const DEFAULT_EGRESS = new EgressPolicy();

/**
 * An HTTP request from the agent, checked against its egress policy on every
 * connection (redirects too, at most 5); the body output is capped at
 * {@link MAX_HTTP_BODY_BYTES} and the rest is never read.
 */
export function runHttp(spec: HttpSpec, opts: HttpStepOptions, ctx: BuiltinContext): RunningShell {
  return builtin(ctx, async (signal) => {
    const t0 = Date.now();
    const res = await httpExchange(spec, {
      egress: opts.egress ?? DEFAULT_EGRESS,
      signal,
      maxBodyBytes: MAX_HTTP_BODY_BYTES,
      onRedirect: (line) => ctx.log('stdout', line),
    });
    const size = res.truncated ? `more than ${MAX_HTTP_BODY_BYTES} bytes, body truncated` : `${res.body.length} bytes`;
    ctx.log('stdout', `${spec.method} ${res.url.href} -> ${res.status} ${res.statusText} (${Date.now() - t0} ms, ${size})\n`);
    const outputs = {
      status: String(res.status),
      body: res.body.toString('utf8'),
      headers: JSON.stringify(res.headers),
      ...(res.truncated ? { body_truncated: 'true' } : {}),
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
    // "..hidden" is a name inside the root; only ".." itself as the first segment leaves it.
    if (rel && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel)) return real;
  }
  throw new FileRootError(`"${path}" is outside the agent's allowed roots (${roots.join(', ')}); write inside one of them, or add a root with --file-root`);
}

/** How this agent runs file steps. */
export interface FileStepOptions {
  /** Directories file steps may write into (--file-root). */
  roots: string[];
  /** Setuid, setgid and sticky modes are written (--file-allow-special-modes); otherwise they fail the step. */
  allowSpecialModes?: boolean;
  /** The content holds a secret: no `sha256` output (an unsalted hash of a short secret can be guessed). */
  secretContent?: boolean;
}

/**
 * Writes a file atomically inside the allowed roots, with exactly the mode
 * asked for (despite the umask) and the owner, if any; nothing is left
 * behind when it fails.
 */
export function runFile(spec: FileSpec, opts: FileStepOptions, ctx: BuiltinContext): RunningShell {
  return builtin(ctx, async () => {
    let target: string;
    let mode: number;
    let owner: { uid: number; gid: number } | undefined;
    try {
      target = resolveInRoots(spec.path, opts.roots);
      mode = parseFileMode(spec.mode, opts.allowSpecialModes ?? false);
      owner = spec.owner ? resolveOwner(spec.owner) : undefined;
      mkdirSync(dirname(target), { recursive: true });
      writeAtomically(target, spec.content, mode, owner);
    } catch (err) {
      return { ok: false, message: (err as Error).message };
    }
    const sha256 = createHash('sha256').update(spec.content).digest('hex');
    ctx.log('stdout', `wrote ${Buffer.byteLength(spec.content)} bytes to ${target} (mode ${octal(mode)}${spec.owner ? `, owner ${spec.owner}` : ''})\n`);
    return { ok: true, outputs: { path: target, bytes: String(Buffer.byteLength(spec.content)), ...(opts.secretContent ? {} : { sha256 }) } };
  });
}
