/**
 * `drover dev`'s local fleet (and `drover run --local`'s, with one agent):
 * one control plane and its agents as real child processes, and the wait until all of them are up. Security is on as
 * anywhere else (TLS, tokens, enrolled agents); the sandbox sets it up: it
 * reads the admin token and CA the control plane writes into its data dir,
 * makes an enrollment token with them, and hands that to the agents.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DroverClient, type ClientOptions } from '../../client.js';
import { DroverError, InternalError } from '../../errors.js';
import type { Agent } from '../../types.js';
import { entryPath } from '../entries.js';
import { describeExit, logTail, type Child, type Supervisor } from './supervisor.js';

/** An agent of a sandbox. */
export interface SandboxAgent {
  name: string;
  labels: Record<string, string>;
}

/** The agents of `drover dev`'s sandbox, covering the labels of examples/onboarding.yaml. */
export const DEV_AGENTS: readonly SandboxAgent[] = [
  { name: 'dir-1', labels: { role: 'directory', site: 'hq' } },
  { name: 'assets-1', labels: { role: 'assets', site: 'hq' } },
  { name: 'apps-1', labels: { role: 'apps', cloud: 'aws', site: 'eu' } },
];

/** How long the whole sandbox may take to come up. */
export const READY_TIMEOUT_MS = 30_000;

/** How often readiness is polled while waiting. */
const POLL_MS = 250;

/** Where the sandbox lives. */
export interface Sandbox {
  address: string;
  dir: string;
  server: Child;
  agents: Child[];
  /** The admin token's file and the CA the control plane made (in <dir>/server). */
  tokenFile: string;
  caFile: string;
  /** Options for a client with the admin token. */
  client: ClientOptions;
  /** The dashboard's URL (plain HTTP on 127.0.0.1, port + 1), with the admin token in the fragment, which the browser keeps to itself. */
  dashboard: string;
}

/** The admin token and CA of the sandbox's control plane, once it has written them and answers. */
async function serverReady(server: Child, address: string, dataDir: string, deadline: number): Promise<ClientOptions> {
  const tokenFile = join(dataDir, 'admin.token');
  const caFile = join(dataDir, 'ca.pem');
  while (Date.now() < deadline) {
    if (server.exit) throw failure(server, describeExit(server));
    if (existsSync(tokenFile) && existsSync(caFile)) {
      const opts: ClientOptions = { address, token: readFileSync(tokenFile, 'utf8').trim(), ca: caFile, connectTimeoutMs: 1000 };
      // A fresh client per probe: a channel that saw a refused connection backs off for seconds.
      const probe = new DroverClient(opts);
      try {
        await probe.fleet.list();
        return { ...opts, connectTimeoutMs: undefined };
      } catch (err) {
        if (!(err instanceof DroverError) || err.code !== 'SERVER_UNREACHABLE') throw err;
      } finally {
        probe.close();
      }
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  throw failure(server, `did not answer at ${address} within ${READY_TIMEOUT_MS / 1000}s`);
}

/**
 * Starts the control plane (on `port`, its dashboard on `port + 1`), waits
 * until it answers, makes an enrollment token for the sandbox's agents and
 * starts them (does not wait for them).
 */
export async function startSandbox(supervisor: Supervisor, port: number, dirOption: string, agentList: readonly SandboxAgent[] = DEV_AGENTS): Promise<Sandbox> {
  const dir = resolve(dirOption);
  const address = `127.0.0.1:${port}`;
  const serverScript = entryPath('server');
  const agentScript = entryPath('agent');
  const logs = join(dir, 'logs');
  const dataDir = join(dir, 'server');
  mkdirSync(logs, { recursive: true });
  mkdirSync(dataDir, { recursive: true });
  const http = `127.0.0.1:${port + 1}`;
  const server = supervisor.start('server', serverScript, ['--listen', address, '--data-dir', dataDir, '--http', http, '--http-plain'], join(logs, 'server.log'));
  const client = await serverReady(server, address, dataDir, Date.now() + READY_TIMEOUT_MS);
  const admin = new DroverClient(client);
  let enrollToken: string;
  try {
    // Enough uses for the three agents, and short-lived: an agent that has enrolled needs it no more.
    enrollToken = (await admin.access.createEnrollToken({ uses: agentList.length, ttlMs: 10 * 60_000, description: 'drover dev agents' })).token;
  } finally {
    admin.close();
  }
  const agents = agentList.map(({ name, labels }) => {
    const stateDir = join(dir, 'agents', name);
    mkdirSync(stateDir, { recursive: true });
    const labelArgs = Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
    // A dev session's steps end with it (a real agent's keep running across its restarts).
    const args = ['--server', address, '--name', name, ...labelArgs, '--state-dir', stateDir, '--stop-steps-on-exit'];
    // Agents that enrolled on an earlier `drover dev` keep their certificate; the token is for new ones.
    return supervisor.start(name, agentScript, args, join(logs, `${name}.log`), { DROVER_ENROLL_TOKEN: enrollToken });
  });
  const dashboard = `http://${http}/#token=${encodeURIComponent(client.token ?? '')}`;
  return { address, dir, server, agents, tokenFile: join(dataDir, 'admin.token'), caFile: join(dataDir, 'ca.pem'), client, dashboard };
}

function failure(child: Child, what: string): InternalError {
  return new InternalError(`drover dev: ${child.name} ${what}; last lines of ${child.logFile}:\n${logTail(child.logFile)}`.trimEnd(), {
    hint: `the full log is ${child.logFile}`,
  });
}

/**
 * Resolves with the fleet once the server answers and every sandbox agent is
 * connected; rejects with the failing process's log tail after
 * READY_TIMEOUT_MS or as soon as a child exits.
 */
export async function waitForSandbox(sandbox: Sandbox): Promise<Agent[]> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  const names = sandbox.agents.map((a) => a.name);
  let serverUp = false;
  let agents: Agent[] = [];
  while (Date.now() < deadline) {
    const dead = [sandbox.server, ...sandbox.agents].find((c) => c.exit);
    if (dead) throw failure(dead, describeExit(dead));
    // A fresh client per probe: a channel that saw a refused connection backs off for seconds.
    const probe = new DroverClient({ ...sandbox.client, connectTimeoutMs: 1000 });
    try {
      agents = await probe.fleet.list();
      serverUp = true;
      const connected = new Set(agents.filter((a) => a.state === 'connected').map((a) => a.name));
      if (names.every((n) => connected.has(n))) return agents;
    } catch (err) {
      if (!(err instanceof DroverError) || err.code !== 'SERVER_UNREACHABLE') throw err;
    } finally {
      probe.close();
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  if (!serverUp) throw failure(sandbox.server, `did not answer at ${sandbox.address} within ${READY_TIMEOUT_MS / 1000}s`);
  const connected = new Set(agents.filter((a) => a.state === 'connected').map((a) => a.name));
  const missing = sandbox.agents.find((c) => !connected.has(c.name)) ?? sandbox.agents[0];
  throw failure(missing, `did not connect within ${READY_TIMEOUT_MS / 1000}s`);
}
