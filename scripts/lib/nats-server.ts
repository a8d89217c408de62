/**
 * Starts a real nats-server (Debian package `nats-server`) on an ephemeral
 * 127.0.0.1 port with JetStream in a temp dir and waits until it accepts
 * connections. Fails with a message naming the package when the binary is
 * missing. Shared by the tests (test/helpers/nats.ts, which also stops it
 * after each test file) and the benchmark (scripts/bench/).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/** Where Debian puts the binary (/usr/sbin), then anything on PATH. */
function findBinary(): string {
  const dirs = ['/usr/sbin', '/usr/bin', ...(process.env.PATH ?? '').split(delimiter).filter(Boolean)];
  for (const dir of dirs) {
    const p = join(dir, 'nats-server');
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  throw new Error(
    'nats-server is not installed: install the Debian package "nats-server" ' +
      '(`apt-get install nats-server`, or `bash scripts/setup-test-deps.sh`), then run the tests again',
  );
}

export interface NatsServerOptions {
  /** Port to bind; default: one the OS picks. Pass the old port to restart "the same" server. */
  port?: number;
  /** JetStream store dir; default: a new temp dir. */
  storeDir?: string;
  /** Require this user and password. */
  user?: string;
  pass?: string;
  /** The server's max_payload in bytes (nats-server's default is 1 MiB). */
  maxPayload?: number;
  /** More configuration text (for example what `drover server nats-config` prints). */
  config?: string;
}

export interface NatsServer {
  /** nats://127.0.0.1:PORT */
  url: string;
  port: number;
  /** The nats-server process id (the benchmark reads its CPU use from /proc). */
  pid: number;
  storeDir: string;
  /** The server's log so far. */
  output(): string;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();

/** Stops every nats-server this process started and has not stopped yet. */
export async function stopAllNatsServers(): Promise<void> {
  await Promise.all([...running].map((c) => stop(c)));
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(t);
      res();
    });
    child.kill('SIGTERM');
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = tcpConnect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });
}

/** Starts nats-server and resolves once a TCP connection to it succeeds. */
export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  const bin = findBinary();
  const storeDir = opts.storeDir ?? mkdtempSync(join(tmpdir(), 'drover-nats-'));
  // -p -1: the OS picks a free port and the server logs it; no bind-then-release race.
  const args = ['-js', '-sd', storeDir, '-a', '127.0.0.1', '-p', String(opts.port ?? -1)];
  if (opts.user) args.push('--user', opts.user, '--pass', opts.pass ?? '');
  if (opts.maxPayload || opts.config) {
    const conf = join(mkdtempSync(join(tmpdir(), 'drover-nats-conf-')), 'nats.conf');
    writeFileSync(conf, `${opts.maxPayload ? `max_payload: ${opts.maxPayload}\n` : ''}${opts.config ?? ''}`);
    args.push('-c', conf);
  }
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));

  const deadline = Date.now() + 15_000;
  for (;;) {
    const port = Number(/Listening for client connections on [^\s]+:(\d+)/.exec(out)?.[1] ?? 0);
    if (port && (await accepts(port))) {
      return { url: `nats://127.0.0.1:${port}`, port, pid: child.pid!, storeDir, output: () => out, stop: () => stop(child) };
    }
    if (child.exitCode !== null) throw new Error(`nats-server ${args.join(' ')} exited with code ${child.exitCode}:\n${out}`);
    if (Date.now() > deadline) {
      await stop(child);
      throw new Error(`nats-server did not accept connections within 15 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
