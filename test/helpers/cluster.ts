/**
 * Starts real control-plane and agent processes on 127.0.0.1 ephemeral ports
 * for integration tests, and stops every one of them after the test file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll } from 'vitest';
import { clientOptionsFor, createEnrollToken, readServerCredentials, type ServerCredentials } from '../../scripts/lib/credentials.js';
import type { ClientOptions } from '../../sdk/index.js';

const ROOT = resolve(import.meta.dirname, '../..');
export const ENTRY = {
  server: join(ROOT, 'dist/control-plane/main.js'),
  agent: join(ROOT, 'dist/agent/main.js'),
  cli: join(ROOT, 'dist/sdk/cli/main.js'),
};

const children = new Set<ChildProcess>();
afterAll(async () => {
  await Promise.all([...children].map((c) => stopChild(c, 'SIGKILL')));
});

export function tempDir(prefix = 'drover-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Writes a workflow document to `dir`/`name` and returns its path. */
export function workflowFile(dir: string, name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

export interface Proc {
  child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** The test expects this process to exit by itself (refused, replaced, revoked): do not report it. */
  expectExit(): void;
}

function launch(entry: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  return launchBinary(process.execPath, [entry, ...args], env);
}

/** Runs an executable (node with an entry, or the single-binary agent) and keeps its output. */
function launchBinary(bin: string, argv: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const [entry, ...args] = bin === process.execPath ? argv : [bin, ...argv];
  const child = spawn(bin, argv, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  child.once('exit', (code, signal) => {
    children.delete(child);
    // A process that dies on its own is a finding: show why.
    if (!stopping.has(child) && (code || signal)) {
      const shown = args.map((a, i) => (args[i - 1] === '--token' ? '<token>' : a)).join(' ');
      process.stderr.write(`\n${entry} ${shown} exited (${code ?? signal}); last output:\n${out.slice(-4000)}\n`);
    }
  });
  return { child, output: () => out, stop: (signal = 'SIGTERM') => stopChild(child, signal), expectExit: () => void stopping.add(child) };
}

const stopping = new WeakSet<ChildProcess>();

function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  stopping.add(child);
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(t);
      res();
    });
    child.kill(signal);
  });
}

/** Where agents dial and the token they enroll with: a ServerProc, or one behind a proxy. */
export interface AgentTarget {
  address: string;
  enrollToken: string;
}

export interface ServerProc extends Proc, AgentTarget {
  dataDir: string;
  /** The admin token and CA the server wrote into its data dir. */
  creds: ServerCredentials;
  /** Options for a DroverClient with the admin token. */
  clientOptions: ClientOptions;
  /** DROVER_ADDR, DROVER_TOKEN and DROVER_CA, for CLI runs. */
  env: Record<string, string>;
}

/** Starts `drover server` on an ephemeral port and waits until it listens; makes a multi-use enrollment token. */
export async function startServer(opts: { dataDir?: string; listen?: string; args?: string[] } = {}): Promise<ServerProc> {
  const dataDir = opts.dataDir ?? tempDir('drover-server-');
  const p = launch(ENTRY.server, ['--listen', opts.listen ?? '127.0.0.1:0', '--data-dir', dataDir, ...(opts.args ?? [])]);
  const address = await waitFor(() => /listening on (\S+)/.exec(p.output())?.[1], 15_000, () => `server to listen:\n${p.output()}`);
  const creds = readServerCredentials(dataDir);
  const enrollToken = await createEnrollToken(address, creds);
  return {
    ...p,
    address,
    dataDir,
    creds,
    enrollToken,
    clientOptions: clientOptionsFor(address, creds),
    env: { DROVER_ADDR: address, DROVER_TOKEN: creds.token, DROVER_CA: creds.caFile },
  };
}

/**
 * Starts another replica of a replicated control plane (`--store jetstream`)
 * on `dataDir` (its key files copied from the first one's, see
 * `replicaDataDir`); it serves as a standby until it takes the lease, so this
 * waits for either line. `address` is the one it listens on.
 */
export async function startReplica(opts: { dataDir: string; listen?: string; args?: string[] }): Promise<Proc & { address: string; dataDir: string }> {
  const p = launch(ENTRY.server, ['--listen', opts.listen ?? '127.0.0.1:0', '--data-dir', opts.dataDir, ...(opts.args ?? [])]);
  const address = await waitFor(() => /(?:standby on|listening on) ([^\s:]+:\d+)/.exec(p.output())?.[1], 20_000, () => `replica to listen:\n${p.output()}`);
  return { ...p, address, dataDir: opts.dataDir };
}

/** A new data dir for another replica: the first one's keys, CA, NATS account and admin token (docs/scale-out.md), not its local files. */
export function replicaDataDir(from: string): string {
  const dir = tempDir('drover-replica-');
  for (const f of readdirSync(from)) if (/^(ca\.(pem|key)|control-signing\.key|secret\.key|admin\.token|nats-.*\.(nk|creds))$/.test(f)) copyFileSync(join(from, f), join(dir, f));
  return dir;
}

export interface AgentProc extends Proc {
  name: string;
  stateDir: string;
}

export function startAgent(
  server: AgentTarget,
  name: string,
  labels: Record<string, string> = {},
  stateDir = tempDir(`drover-agent-${name}-`),
  extraArgs: string[] = [],
): AgentProc {
  const args = ['--server', server.address, '--token', server.enrollToken, '--name', name, '--state-dir', stateDir, '--grace-ms', '1000', ...extraArgs];
  for (const [k, v] of Object.entries(labels)) args.push('--label', `${k}=${v}`);
  return { ...launch(ENTRY.agent, args), name, stateDir };
}

/**
 * Starts an agent the way a user does: the `drover agent` command (its pid is
 * the agent itself), for fault tests that kill or stop what a user runs.
 */
export function startAgentCommand(server: AgentTarget, name: string, labels: Record<string, string> = {}, stateDir = tempDir(`drover-agent-${name}-`), bin?: string): AgentProc {
  const args = ['--server', server.address, '--token', server.enrollToken, '--name', name, '--state-dir', stateDir, '--grace-ms', '1000'];
  for (const [k, v] of Object.entries(labels)) args.push('--label', `${k}=${v}`);
  return { ...(bin ? launchBinary(bin, args) : launch(ENTRY.cli, ['agent', ...args])), name, stateDir };
}

/** Starts an agent that links over NATS (`--nats URL`, docs/nats.md) instead of gRPC; it enrolls over gRPC at `server`. */
export function startNatsAgent(
  server: AgentTarget,
  nats: string,
  name: string,
  labels: Record<string, string> = {},
  stateDir = tempDir(`drover-agent-${name}-`),
  extraArgs: string[] = [],
): AgentProc {
  const args = ['--nats', nats, '--server', server.address, '--token', server.enrollToken, '--name', name, '--state-dir', stateDir, '--grace-ms', '1000', ...extraArgs];
  for (const [k, v] of Object.entries(labels)) args.push('--label', `${k}=${v}`);
  return { ...launch(ENTRY.agent, args), name, stateDir };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the `drover` CLI to completion. */
export function cli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): Promise<CliResult> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [ENTRY.cli, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      rej(new Error(`drover ${args.join(' ')} did not finish in ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(t);
      res({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** Polls until `fn` returns a value other than undefined/false, or fails naming what was awaited. */
export async function waitFor<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number, what: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Whether a process exists (signal 0 probes without touching it). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
