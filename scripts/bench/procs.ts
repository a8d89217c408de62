/**
 * Real processes for the benchmark: the built control plane and agents (their
 * logs go to files in the bench's work dir), and what /proc says about any
 * process: CPU seconds, resident and peak resident memory.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createEnrollToken, readServerCredentials, type ServerCredentials } from '../lib/credentials.js';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');
export const ENTRY = {
  server: join(ROOT, 'dist/control-plane/main.js'),
  agent: join(ROOT, 'dist/agent/main.js'),
  agentBinary: join(ROOT, 'dist', `drover-agent-linux-${process.arch}`),
};

/** Clock ticks per second of /proc/<pid>/stat's utime and stime. */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export interface ProcSample {
  /** user + system CPU seconds since the process started. */
  cpuSeconds: number;
  rssBytes: number;
  /** Peak resident set (VmHWM). */
  peakRssBytes: number;
}

/** CPU seconds and memory of a live process, from /proc. */
export function sample(pid: number): ProcSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat (utime, stime); the slice starts at field 3.
  const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  const status = readFileSync(`/proc/${pid}/status`, 'latin1');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { cpuSeconds, rssBytes: kb('VmRSS'), peakRssBytes: kb('VmHWM') };
}

/** Where the bench keeps data dirs, logs and profiles for this run. */
export function workDir(): string {
  return mkdtempSync(join(tmpdir(), 'drover-bench-'));
}

const children = new Set<ChildProcess>();

/** Kills every process the bench started (on exit, also after a failure). */
export function killAll() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}
process.once('exit', killAll);
// A signal ends Node without 'exit': stop the control planes and agents first.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

export interface Proc {
  child: ChildProcess;
  pid: number;
  logFile: string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

function launch(cmd: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = {}): Proc & { stdout: () => string } {
  const fd = openSync(logFile, 'a');
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', fd] });
  closeSync(fd);
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-64 * 1024)));
  return {
    child,
    pid: child.pid!,
    logFile,
    stdout: () => out,
    stop: (signal = 'SIGTERM') => stopChild(child, signal),
  };
}

function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', () => {
      clearTimeout(t);
      res();
    });
    child.kill(signal);
  });
}

export interface ServerProc extends Proc {
  address: string;
  dataDir: string;
  /** Admin token and CA, for clients (TLS and tokens are on, as in a real fleet). */
  creds: ServerCredentials;
  /** A multi-use enrollment token for the agents the bench starts. */
  enrollToken: string;
}

export interface ServerOptions {
  dir: string;
  name: string;
  nats?: string;
  /** Write a V8 CPU profile of the control plane into this dir (node --cpu-prof). */
  profileDir?: string;
  args?: string[];
}

/** Starts the built control plane on an ephemeral 127.0.0.1 port. */
export async function startServer(o: ServerOptions): Promise<ServerProc> {
  if (!existsSync(ENTRY.server)) throw new Error(`${ENTRY.server} is missing: run \`npm run build\` first`);
  const dataDir = join(o.dir, `${o.name}-data`);
  const node: string[] = [];
  if (o.profileDir) {
    mkdirSync(o.profileDir, { recursive: true });
    node.push('--cpu-prof', `--cpu-prof-dir=${o.profileDir}`, `--cpu-prof-name=${o.name}.cpuprofile`);
  }
  const args = [...node, ENTRY.server, '--listen', '127.0.0.1:0', '--data-dir', dataDir, ...(o.nats ? ['--nats', o.nats] : []), ...(o.args ?? [])];
  const p = launch(process.execPath, args, join(o.dir, `${o.name}.log`));
  const address = await waitFor(() => /listening on (\S+)/.exec(p.stdout())?.[1], 20_000, () => `the control plane to listen (log: ${p.logFile})`);
  if (o.nats) await waitFor(() => /serving NATS agents/.test(p.stdout()), 20_000, () => `the control plane to serve NATS (log: ${p.logFile})`);
  const creds = readServerCredentials(dataDir);
  return { ...p, address, dataDir, creds, enrollToken: await createEnrollToken(address, creds) };
}

/**
 * Starts another replica of a replicated control plane (`--store jetstream`):
 * a data dir with the first replica's keys, CA, NATS account and admin
 * token (docs/scale-out.md), waiting as a standby.
 */
export async function startStandby(o: { dir: string; name: string; from: string; args: string[] }): Promise<Proc> {
  const dataDir = join(o.dir, `${o.name}-data`);
  mkdirSync(dataDir, { recursive: true });
  for (const f of readdirSync(o.from)) if (/^(ca\.(pem|key)|control-signing\.key|secret\.key|admin\.token|nats-.*\.(nk|creds))$/.test(f)) copyFileSync(join(o.from, f), join(dataDir, f));
  const p = launch(process.execPath, [ENTRY.server, '--listen', '127.0.0.1:0', '--data-dir', dataDir, ...o.args], join(o.dir, `${o.name}.log`));
  await waitFor(() => /standby on/.test(p.stdout()), 20_000, () => `the standby to listen (log: ${p.logFile})`);
  return p;
}

export interface AgentOptions {
  dir: string;
  name: string;
  server: string;
  /** Enrollment token for the agent's first start. */
  token: string;
  labels?: Record<string, string>;
  /** Run the single-executable agent instead of `node dist/agent/main.js`. */
  binary?: boolean;
}

/** Starts a real agent (the built one, or the single executable) dialling the control plane over gRPC. */
export function startAgent(o: AgentOptions): Proc {
  const stateDir = join(o.dir, `agent-${o.name}`);
  const args = ['--server', o.server, '--name', o.name, '--state-dir', stateDir, '--token', o.token];
  for (const [k, v] of Object.entries(o.labels ?? {})) args.push('--label', `${k}=${v}`);
  const log = join(o.dir, `agent-${o.name}.log`);
  return o.binary ? launch(ENTRY.agentBinary, args, log) : launch(process.execPath, [ENTRY.agent, ...args], log);
}

/** Starts any command with its output in a log file. */
export function startProcess(cmd: string, args: string[], logFile: string): Proc {
  return launch(cmd, args, logFile);
}

/** Polls until `fn` gives a value other than undefined/false; fails naming what was awaited. */
export async function waitFor<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number, what: () => string, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await sleep(everyMs);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
