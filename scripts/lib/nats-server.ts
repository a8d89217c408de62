/**
 * Starts a real nats-server (Debian package `nats-server`) on an ephemeral
 * 127.0.0.1 port with JetStream in a temp dir and waits until it accepts
 * connections. Fails with a message naming the package when the binary is
 * missing; startNatsCluster starts a JetStream cluster of several. Shared by the tests (test/helpers/nats.ts, which also stops it
 * after each test file) and the benchmark (scripts/bench/).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect, createServer, type AddressInfo } from 'node:net';
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

export interface NatsClusterOptions {
  /** Servers in the cluster (default 3: JetStream keeps a quorum with one of them down). */
  size?: number;
  /** More configuration text for every node (for example what `drover server nats-config` prints). */
  config?: string;
}

/** One server of a cluster; stop and start it again on the same ports and store dir. */
export interface NatsClusterNode {
  name: string;
  url: string;
  port: number;
  clusterPort: number;
  storeDir: string;
  /** The monitoring port (http://127.0.0.1:PORT/jsz). */
  monitor: number;
  running(): boolean;
  /** SIGKILL: the server gets no chance to step down or flush. */
  kill(): Promise<void>;
  /** Starts it again with the same configuration; resolves once it accepts connections. */
  start(): Promise<void>;
  output(): string;
}

export interface NatsCluster {
  nodes: NatsClusterNode[];
  /** Every node's client URL, comma-separated (what --nats takes). */
  urls: string;
  /** The node that leads stream `name` now, as the running nodes' /jsz says (undefined: none known). */
  streamLeader(name: string): Promise<NatsClusterNode | undefined>;
  /** Resolves once JetStream has a meta leader again (after nodes came back), or fails after `timeoutMs`. */
  waitForJetStream(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** A port the OS had free a moment ago (routes need every node's cluster port before any starts). */
function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => res(port));
    });
  });
}

/** How long a cluster may take to elect a JetStream meta leader (start, or a node's return). */
const CLUSTER_READY_MS = 30_000;

/**
 * Starts a nats-server cluster on 127.0.0.1 with JetStream on every node
 * (server_name, cluster { name, listen, routes }), each with its own store
 * dir, and resolves once JetStream has a meta leader. The client and cluster
 * ports are picked before the first node starts (each node's routes name all
 * of them), so a node restarted later binds the same ones.
 */
export async function startNatsCluster(opts: NatsClusterOptions = {}): Promise<NatsCluster> {
  const bin = findBinary();
  const size = opts.size ?? 3;
  const root = mkdtempSync(join(tmpdir(), 'drover-nats-cluster-'));
  const ports: NodePorts[] = [];
  for (let i = 0; i < size; i++) ports.push({ client: await freePort(), cluster: await freePort(), monitor: await freePort() });
  const routes = ports.map((p) => `nats-route://127.0.0.1:${p.cluster}`).join(', ');
  const nodes = ports.map((p, i) => clusterNode(bin, root, `n${i + 1}`, p, routes, opts.config ?? ''));
  await Promise.all(nodes.map((n) => n.start()));
  const cluster: NatsCluster = {
    nodes,
    urls: nodes.map((n) => n.url).join(','),
    waitForJetStream: (timeoutMs = CLUSTER_READY_MS) => waitForMetaLeader(nodes, timeoutMs),
    streamLeader: async (stream) => {
      for (const n of nodes.filter((x) => x.running())) {
        const leader = await streamLeaderOf(n, stream);
        if (leader) return nodes.find((x) => x.name === leader);
      }
      return undefined;
    },
    stop: async () => {
      await Promise.all(nodes.map((n) => n.kill()));
    },
  };
  try {
    await cluster.waitForJetStream();
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

interface NodePorts {
  client: number;
  cluster: number;
  /** The monitoring port: /jsz says whether JetStream has a meta leader, whatever auth the clients need. */
  monitor: number;
}

function clusterNode(bin: string, root: string, name: string, ports: NodePorts, routes: string, extra: string): NatsClusterNode {
  const storeDir = join(root, name);
  mkdirSync(storeDir, { recursive: true });
  const conf = join(root, `${name}.conf`);
  writeFileSync(
    conf,
    [
      `server_name: ${name}`,
      'host: 127.0.0.1',
      `port: ${ports.client}`,
      `http: "127.0.0.1:${ports.monitor}"`,
      `jetstream { store_dir: "${storeDir}" }`,
      `cluster { name: drover-test, listen: "127.0.0.1:${ports.cluster}", routes: [ ${routes} ] }`,
      extra,
      '',
    ].join('\n'),
  );
  let child: ChildProcess | undefined;
  let out = '';
  const node: NatsClusterNode = {
    name,
    url: `nats://127.0.0.1:${ports.client}`,
    port: ports.client,
    clusterPort: ports.cluster,
    storeDir,
    monitor: ports.monitor,
    running: () => !!child && child.exitCode === null && child.signalCode === null,
    output: () => out,
    kill: async () => {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      await new Promise<void>((res) => {
        c.once('exit', () => res());
        c.kill('SIGKILL');
      });
    },
    start: async () => {
      if (node.running()) return;
      const c = spawn(bin, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = c;
      running.add(c);
      c.once('exit', () => running.delete(c));
      c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      c.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      const deadline = Date.now() + 15_000;
      while (!(await accepts(ports.client))) {
        if (c.exitCode !== null) throw new Error(`nats-server ${name} (-c ${conf}) exited with code ${c.exitCode}:\n${out.slice(-4000)}`);
        if (Date.now() > deadline) throw new Error(`nats-server ${name} did not accept connections on port ${ports.client} within 15 s:\n${out.slice(-4000)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
  return node;
}

/** The meta leader a node's /jsz names ('' when it knows none, or does not answer). */
async function metaLeader(node: NatsClusterNode): Promise<string> {
  try {
    const res = await fetch(`http://127.0.0.1:${node.monitor}/jsz`, { signal: AbortSignal.timeout(2000) });
    const body = (await res.json()) as { meta_cluster?: { leader?: string } };
    return body.meta_cluster?.leader ?? '';
  } catch {
    return '';
  }
}

/** The leader of `stream` (in any account) that a node's /jsz names ('' when none). */
async function streamLeaderOf(node: NatsClusterNode, stream: string): Promise<string> {
  try {
    const res = await fetch(`http://127.0.0.1:${node.monitor}/jsz?accounts=true&streams=true`, { signal: AbortSignal.timeout(2000) });
    const body = (await res.json()) as { account_details?: { stream_detail?: { name: string; cluster?: { leader?: string } }[] }[] };
    for (const a of body.account_details ?? []) for (const s of a.stream_detail ?? []) if (s.name === stream && s.cluster?.leader) return s.cluster.leader;
  } catch {
    // not answering: ask another node
  }
  return '';
}

/** Resolves once every running node names the same JetStream meta leader, a running one; fails after `timeoutMs` with what each said. */
async function waitForMetaLeader(nodes: NatsClusterNode[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const up = nodes.filter((n) => n.running());
    const leaders = await Promise.all(up.map(metaLeader));
    const leader = leaders[0];
    if (leader && leaders.every((l) => l === leader) && up.some((n) => n.name === leader)) return;
    if (Date.now() > deadline) {
      const said = up.map((n, i) => `${n.name}: ${leaders[i] || 'none'}`).join(', ');
      throw new Error(`the NATS cluster elected no JetStream meta leader within ${timeoutMs} ms (running nodes name: ${said}); is a majority of its ${nodes.length} nodes up?\n${up.map((n) => n.output().slice(-1500)).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
