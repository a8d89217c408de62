/**
 * Options of `installAgent` / `uninstallAgent`: one documented type with
 * defaults and one function that validates and fills it.
 */
import { homedir } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { AGENT_NAME, LABEL_KEY, LABEL_VALUE } from '../../common/names.js';
import { InvalidInputError } from '../errors.js';
import { layoutFor, SERVICE_NAME, type Layout } from './layout.js';
import type { SshTarget } from './target.js';

/** What to install where, and how to reach the host. */
export interface InstallOptions {
  target: SshTarget;
  /** Private key for SSH; default: ssh-agent, else ~/.ssh/id_ed25519, id_ecdsa, id_rsa. */
  identity?: string;
  /** known_hosts file checked (and appended to with acceptNewHostKey). Default ~/.ssh/known_hosts. */
  knownHosts?: string;
  /** Add an unknown host key to knownHosts instead of failing. A changed key always fails. Default false. */
  acceptNewHostKey?: boolean;
  /** The control plane the agent dials (host:port). Required for a first install; an upgrade keeps the installed one. */
  server?: string;
  /** Where the installer asks the control plane whether the agent connected. Default: `server`. */
  api?: string;
  /** Agent name. Default: the installed agent's name, else the host's hostname. */
  name?: string;
  /** Agent labels. Default: the installed agent's labels, else none. */
  labels?: Record<string, string>;
  /**
   * Enrollment token written to the config. Default: the installed one; on a
   * first install, a fresh one made for this agent alone (one use, one hour,
   * its name only) with `credentials`.
   */
  token?: string;
  /** The installer's own access to the control plane at `api`: an API token (admin, to make enrollment tokens) and the CA. */
  credentials?: { token?: string; ca?: string };
  /** Install everything under this directory instead of the system layout. */
  prefix?: string;
  /** The agent binary, or a directory holding drover-agent-linux-<arch>. Default: this package's dist/. */
  binary?: string;
  /** Account the agent runs as, created (useradd --system) when missing; 'root' for none. Default drover-agent. */
  runAs?: string;
  /** Service manager: systemd when it is PID 1 (auto), or force one. Default auto. */
  init?: 'auto' | 'systemd' | 'supervisor';
  /** Print the plan (after read-only probes) without changing the host. Default false. */
  dryRun?: boolean;
  /** How long to wait for the agent to connect; 0 skips the check. Default 60 000. */
  waitMs?: number;
  /** SSH handshake timeout. Default 10 000. */
  connectTimeoutMs?: number;
}

/** InstallOptions with every default filled. */
export interface ResolvedInstallOptions {
  target: SshTarget;
  identity?: string;
  knownHosts: string;
  acceptNewHostKey: boolean;
  server?: string;
  api?: string;
  name?: string;
  labels?: Record<string, string>;
  token?: string;
  credentials: { token?: string; ca?: string };
  layout: Layout;
  binary?: string;
  runAs: string;
  init: 'auto' | 'systemd' | 'supervisor';
  dryRun: boolean;
  waitMs: number;
  connectTimeoutMs: number;
}

const ADDRESS = /^[^\s/]+:\d{1,5}$/;
const USER = /^[a-z_][a-z0-9_-]{0,31}$/;

/** `~/x` → the home directory's x; relative paths are resolved against `base`. */
export function expandPath(path: string, base = process.cwd()): string {
  const p = path === '~' ? homedir() : path.startsWith('~/') ? `${homedir()}/${path.slice(2)}` : path;
  return isAbsolute(p) ? p : resolve(base, p);
}

/** Parses `key=value` labels, with the rules the agent applies. */
export function parseLabelArgs(items: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const i = item.indexOf('=');
    const [k, v] = i < 0 ? [item, undefined] : [item.slice(0, i), item.slice(i + 1)];
    if (v === undefined) throw new InvalidInputError(`--label "${item}" is not key=value`, { hint: 'for example --label role=web' });
    checkLabel(k, v);
    out[k] = v;
  }
  return out;
}

function checkLabel(k: string, v: string): void {
  if (!LABEL_KEY.test(k) || !LABEL_VALUE.test(v)) {
    throw new InvalidInputError(`label "${k}=${v}" is not valid`, {
      hint: 'keys and values use letters, digits, ".", "-", "_" (keys also "/"), at most 63 characters',
    });
  }
}

/** Validates and fills InstallOptions; throws InvalidInputError. */
export function resolveInstallOptions(o: InstallOptions): ResolvedInstallOptions {
  if (o.server !== undefined && !ADDRESS.test(o.server)) {
    throw new InvalidInputError(`--server "${o.server}" is not host:port`, { hint: 'the address agents dial, for example cp.example:7400' });
  }
  if (o.api !== undefined && !ADDRESS.test(o.api)) throw new InvalidInputError(`--api "${o.api}" is not host:port`);
  if (o.name !== undefined && !AGENT_NAME.test(o.name)) {
    throw new InvalidInputError(`--name "${o.name}" is not valid`, { hint: 'letters, digits, ".", "-", "_" (at most 63), starting with a letter or digit' });
  }
  for (const [k, v] of Object.entries(o.labels ?? {})) checkLabel(k, v);
  const runAs = o.runAs ?? SERVICE_NAME;
  if (!USER.test(runAs)) throw new InvalidInputError(`--run-as "${runAs}" is not a valid user name`);
  if (o.token !== undefined && /\s/.test(o.token)) throw new InvalidInputError('--token may not contain white space');
  const waitMs = o.waitMs ?? 60_000;
  if (!Number.isFinite(waitMs) || waitMs < 0) throw new InvalidInputError('the wait time must be 0 or more');
  return {
    target: o.target,
    ...(o.identity ? { identity: expandPath(o.identity) } : {}),
    knownHosts: expandPath(o.knownHosts ?? '~/.ssh/known_hosts'),
    acceptNewHostKey: o.acceptNewHostKey ?? false,
    server: o.server,
    api: o.api,
    name: o.name,
    labels: o.labels,
    token: o.token,
    credentials: o.credentials ?? {},
    layout: layoutFor(o.prefix),
    ...(o.binary ? { binary: expandPath(o.binary) } : {}),
    runAs,
    init: o.init ?? 'auto',
    dryRun: o.dryRun ?? false,
    waitMs,
    connectTimeoutMs: o.connectTimeoutMs ?? 10_000,
  };
}
