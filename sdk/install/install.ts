/**
 * Installs, upgrades and uninstalls an agent on one host over SSH: connect,
 * probe (read-only), plan (plan.ts), run the plan, wait until the agent is
 * connected in the fleet, commit; on any failure after the first change, roll
 * back so the host ends fully installed or as it was.
 */
import { randomBytes } from 'node:crypto';
import { AGENT_NAME } from '../../common/names.js';
import { DroverClient } from '../client.js';
import { AgentNotFoundError, DroverError, InstallError, ServerUnreachableError, type InstallFailure } from '../errors.js';
import type { Agent } from '../types.js';
import { binaryInfo, findBinary } from './binary.js';
import { existingProbe, factsProbe, parseExisting, parseFacts, type AgentFileConfig, type ExistingInstall, type HostFacts } from './facts.js';
import type { ResolvedInstallOptions } from './options.js';
import { planInstall, planUninstall, remote, type Action, type InstallPlan } from './plan.js';
import { quote } from './shell.js';
import { SshHost, type ConnectOptions, type RemoteHost } from './ssh.js';
import { formatTarget } from './target.js';

/** How a host ended. */
export type HostOutcome = 'installed' | 'upgraded' | 'completed' | 'uninstalled' | 'not-installed' | 'planned' | 'failed';

/** The result for one host; `error` is set exactly when `ok` is false. */
export interface HostResult {
  /** `user@host:port`. */
  target: string;
  ok: boolean;
  outcome: HostOutcome;
  /** Agent name. */
  name?: string;
  /** What `drover-agent --version` printed on the host. */
  version?: string;
  /** `x64` / `arm64`, or the host's `uname -m` when unsupported. */
  arch?: string;
  init?: 'systemd' | 'supervisor';
  /** True when the login user is not root and privileged commands went through sudo. */
  sudo: boolean;
  notes: string[];
  /** The read-only probes that ran, then the planned actions (for --dry-run). */
  probes: Action[];
  plan: Action[];
  /** What the rollback would run (--dry-run of an install). */
  rollback: Action[];
  error?: InstallError;
  ms: number;
}

/** Progress callbacks, one host at a time or many in parallel. */
export interface InstallEvents {
  /** A step started on a host. */
  step?(target: string, title: string, sudo: boolean): void;
  /** Bytes of the binary sent so far. */
  upload?(target: string, sent: number, total: number): void;
}

/** Seams for tests: how to open a session and how to ask the control plane about an agent. */
export interface InstallDeps {
  connect(opts: ConnectOptions): Promise<RemoteHost>;
  /** The agent as the control plane at `api` sees it; undefined when unknown; rejects with ServerUnreachableError. */
  agent(api: string, name: string, creds: ApiCredentials): Promise<Agent | undefined>;
  /** A one-use enrollment token for agent `name`, made at `api`. */
  enrollToken(api: string, name: string, creds: ApiCredentials): Promise<string>;
  /** Pause between fleet checks. */
  sleep(ms: number): Promise<void>;
}

/** How often the installer asks the control plane whether the agent connected. */
const POLL_MS = 500;
/** Lines of the agent's log shown when it does not connect. */
const LOG_LINES = 30;

/** How long a token the installer makes for an agent stays valid: long enough for a slow host to start. */
const INSTALL_TOKEN_TTL_MS = 60 * 60_000;

type ApiCredentials = ResolvedInstallOptions['credentials'];

const clients = new Map<string, DroverClient>();

function clientFor(api: string, creds: ApiCredentials): DroverClient {
  let client = clients.get(api);
  if (!client) clients.set(api, (client = new DroverClient({ address: api, ...creds })));
  return client;
}

/** The real seams: SSH via node-ssh and the SDK's fleet.get. */
export const defaultDeps: InstallDeps = {
  connect: (opts) => SshHost.connect(opts),
  async enrollToken(api, name, creds) {
    const made = await clientFor(api, creds).access.createEnrollToken({ uses: 1, ttlMs: INSTALL_TOKEN_TTL_MS, namePattern: name, description: `drover agent install: ${name}` });
    return made.token;
  },
  async agent(api, name, creds) {
    const client = clientFor(api, creds);
    try {
      return await client.fleet.get(name);
    } catch (err) {
      if (err instanceof AgentNotFoundError) return undefined;
      throw err;
    }
  },
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

/** Closes the control-plane clients the default seams opened. */
export function closeInstallClients(): void {
  for (const c of clients.values()) c.close();
  clients.clear();
}

function fail(reason: InstallFailure, message: string, hint: string, cause?: unknown): InstallError {
  return new InstallError(message, { reason, hint, ...(cause ? { cause } : {}) });
}

/** Runs one planned action; a non-zero exit becomes an InstallError naming the action. */
async function runAction(host: RemoteHost, action: Action, target: string, events: InstallEvents, ctx: { user: string; bin: string }): Promise<string> {
  events.step?.(target, action.title, action.sudo);
  const stdin = action.stdin;
  const res =
    stdin && 'file' in stdin
      ? await host.execWithFile(action.command, stdin.file, (sent) => events.upload?.(target, sent, stdin.bytes))
      : await host.exec(action.command, stdin?.text);
  if (res.code === 0) return res.stdout;
  const out = (res.stderr || res.stdout).trim().split('\n').slice(-5).join('\n');
  if (action.sudo && /password is required|a terminal is required|not in the sudoers/i.test(out)) {
    throw fail('SUDO_FAILED', `${target}: sudo asked for a password (${action.title})`, `allow passwordless sudo for the login user (NOPASSWD in /etc/sudoers.d), or log in as root`);
  }
  const hints: Record<string, string> = {
    verify: 'the binary changed on the way or the disk is full; run the install again',
    check: `the service user ${ctx.user} cannot run ${ctx.bin}: make every directory on its path readable and searchable by ${ctx.user} (chmod o+rx), mount it without noexec, or pass --run-as root`,
    upload: 'check the free space in the target directory (and /tmp when sudo is used)',
  };
  throw fail('COMMAND_FAILED', `${target}: ${action.title} failed (exit ${res.code}): ${out || 'no output'}`, hints[action.id] ?? 'see the message; run the install again once it is fixed');
}

async function probe(host: RemoteHost, opts: ResolvedInstallOptions, target: string, result: HostResult, events: InstallEvents): Promise<{ facts: HostFacts; existing: ExistingInstall }> {
  const factsAction: Action = { id: 'probe', title: 'detect OS, architecture, init system and free space', command: remote(factsProbe(opts.layout, opts.runAs), false), sudo: false };
  result.probes.push(factsAction);
  events.step?.(target, factsAction.title, false);
  const res = await host.exec(factsAction.command);
  const facts = parseFacts(res.stdout);
  result.sudo = facts.uid !== 0;
  result.arch = facts.arch ?? facts.machine;
  if (facts.os !== 'Linux') {
    throw fail('UNSUPPORTED_PLATFORM', `${target}: the host runs ${facts.os || 'an unknown OS'} (uname -s); drover agents run on Linux only; nothing was changed`, 'install agents on Linux hosts');
  }
  if (!facts.arch) {
    throw fail(
      'UNSUPPORTED_PLATFORM',
      `${target}: unsupported architecture ${facts.machine || '(unknown)'} (uname -m); agents are built for x86_64 and aarch64 only; nothing was changed`,
      'install on an x86_64 or aarch64 host',
    );
  }
  if (facts.uid < 0) throw fail('COMMAND_FAILED', `${target}: the host did not answer the probe: ${res.stderr.trim()}`, 'check that the login user has a POSIX shell');
  if (result.sudo) {
    const sudoAction: Action = { id: 'sudo', title: `check that ${facts.user} may use sudo without a password`, command: 'sudo -n true', sudo: true };
    result.probes.push(sudoAction);
    events.step?.(target, sudoAction.title, true);
    const s = facts.tools.has('sudo') ? await host.exec(sudoAction.command) : { code: 127, stderr: 'sudo: not found', stdout: '' };
    if (s.code !== 0) {
      throw fail(
        'SUDO_FAILED',
        `${target}: ${facts.user} is not root and cannot use sudo without a password (${s.stderr.trim() || `exit ${s.code}`}); nothing was changed`,
        `log in as root, or allow ${facts.user} passwordless sudo (e.g. "${facts.user} ALL=(root) NOPASSWD: ALL" in /etc/sudoers.d/drover)`,
      );
    }
  }
  const existingAction: Action = { id: 'existing', title: 'look for an earlier install', command: remote(existingProbe(opts.layout), result.sudo), sudo: result.sudo };
  result.probes.push(existingAction);
  events.step?.(target, existingAction.title, result.sudo);
  const existing = parseExisting((await host.exec(existingAction.command)).stdout);
  return { facts, existing };
}

function agentConfig(opts: ResolvedInstallOptions, facts: HostFacts, existing: ExistingInstall, target: string): AgentFileConfig {
  const installed = existing.config ?? {};
  if (opts.name && installed.name && opts.name !== installed.name) {
    throw fail(
      'NAME_CONFLICT',
      `${target}: the agent installed here is named ${installed.name}, not ${opts.name}; nothing was changed`,
      `leave out --name (or pass --name ${installed.name}) to upgrade it, or uninstall it first to install under a new name`,
    );
  }
  const name = opts.name ?? installed.name ?? facts.hostname.split('.')[0];
  if (!AGENT_NAME.test(name ?? '')) {
    throw fail('BAD_INPUT', `${target}: the host name "${name}" is not a valid agent name; nothing was changed`, 'pass --name (letters, digits, ".", "-", "_")');
  }
  const server = opts.server ?? installed.server;
  if (!server) throw fail('BAD_INPUT', `${target}: no --server given and no agent is installed to take it from; nothing was changed`, 'pass --server HOST:PORT, the control plane address the agent dials');
  const token = opts.token ?? installed.token;
  return {
    server,
    name,
    labels: opts.labels ?? (installed.labels && typeof installed.labels === 'object' ? installed.labels : {}),
    stateDir: opts.layout.stateDir,
    ...(token ? { token } : {}),
  };
}

/** An enrollment token for the agent being installed; fails the host (nothing changed yet) when none can be made. */
async function mintToken(deps: InstallDeps, api: string, name: string, creds: ApiCredentials, target: string): Promise<string> {
  try {
    return await deps.enrollToken(api, name, creds);
  } catch (err) {
    throw fail(
      'BAD_INPUT',
      `${target}: cannot make an enrollment token for ${name} at ${api}: ${(err as Error).message}; nothing was changed`,
      'the installer needs an admin API token (--token or DROVER_TOKEN) and the CA (--ca or DROVER_CA); or pass --enroll-token with one made by `drover token create --enroll`',
      err,
    );
  }
}

/** The agent, or undefined when the control plane does not know it or does not answer (`answered` says which). */
async function lookUp(deps: InstallDeps, api: string, name: string, creds: ApiCredentials): Promise<{ agent?: Agent; answered: boolean }> {
  try {
    return { agent: await deps.agent(api, name, creds), answered: true };
  } catch (err) {
    if (err instanceof ServerUnreachableError) return { answered: false };
    throw err;
  }
}

/**
 * Waits until the control plane shows `name` connected with a connection that
 * started after `before` and the expected version. Resolves with the agent, or
 * at the deadline with none and whether the control plane ever answered.
 */
async function waitConnected(
  deps: InstallDeps,
  api: string,
  name: string,
  before: Agent | undefined,
  version: string,
  waitMs: number,
  creds: ApiCredentials,
): Promise<{ agent?: Agent; answered: boolean }> {
  const deadline = Date.now() + waitMs;
  let answered = false;
  for (;;) {
    const seen = await lookUp(deps, api, name, creds);
    answered ||= seen.answered;
    const agent = seen.agent;
    const fresh = !before || before.state !== 'connected' || agent?.connectedSince !== before.connectedSince;
    if (agent?.state === 'connected' && fresh && (!version || agent.facts?.agentVersion === version)) return { agent, answered };
    if (Date.now() >= deadline) return { answered };
    await deps.sleep(POLL_MS);
  }
}

async function agentLogs(host: RemoteHost, opts: ResolvedInstallOptions, init: 'systemd' | 'supervisor', sudo: boolean): Promise<string> {
  const cmd = init === 'systemd' ? `journalctl -u ${quote(opts.layout.unitName)} -n ${LOG_LINES} --no-pager` : `tail -n ${LOG_LINES} ${quote(opts.layout.logFile)}`;
  try {
    const res = await host.exec(remote(cmd, sudo));
    return (res.stdout || res.stderr).trim();
  } catch {
    return '';
  }
}

/** Runs the rollback, best effort; returns the failures. */
async function rollBack(host: RemoteHost, plan: InstallPlan, target: string, events: InstallEvents): Promise<string[]> {
  const failures: string[] = [];
  for (const action of plan.rollback) {
    events.step?.(target, `rollback: ${action.title}`, action.sudo);
    try {
      const res = await host.exec(action.command, action.stdin && 'text' in action.stdin ? action.stdin.text : undefined);
      if (res.code !== 0) failures.push(`${action.title}: ${(res.stderr || res.stdout).trim() || `exit ${res.code}`}`);
    } catch (err) {
      failures.push(`${action.title}: ${(err as Error).message}`);
    }
  }
  return failures;
}

function newResult(opts: ResolvedInstallOptions): HostResult {
  return {
    target: formatTarget(opts.target),
    ok: false,
    outcome: 'failed',
    ...(opts.name ? { name: opts.name } : {}),
    sudo: false,
    notes: [],
    probes: [],
    plan: [],
    rollback: [],
    ms: 0,
  };
}

function asInstallError(err: unknown, target: string): InstallError {
  if (err instanceof InstallError) return err;
  if (err instanceof DroverError) return new InstallError(`${target}: ${err.message}`, { reason: 'BAD_INPUT', hint: err.hint, cause: err });
  return new InstallError(`${target}: ${(err as Error)?.message ?? String(err)}`, { reason: 'COMMAND_FAILED', hint: 'run the install again; it picks up where this one stopped', cause: err });
}

/** Installs (or upgrades, or completes) the agent on one host. Never throws: failures are in the result. */
export async function installAgent(opts: ResolvedInstallOptions, events: InstallEvents = {}, deps: InstallDeps = defaultDeps): Promise<HostResult> {
  const started = Date.now();
  const result = newResult(opts);
  const target = result.target;
  let host: RemoteHost | undefined;
  try {
    events.step?.(target, 'connect', false);
    host = await deps.connect({ target: opts.target, identity: opts.identity, knownHosts: opts.knownHosts, acceptNewHostKey: opts.acceptNewHostKey, connectTimeoutMs: opts.connectTimeoutMs });
    const { facts, existing } = await probe(host, opts, target, result, events);
    const init = opts.init === 'auto' ? (facts.systemd ? 'systemd' : 'supervisor') : opts.init;
    if (init === 'systemd' && !facts.tools.has('systemctl')) {
      throw fail('UNSUPPORTED_PLATFORM', `${target}: --init systemd was asked for, but the host has no systemctl; nothing was changed`, 'leave out --init to use the supervisor fallback');
    }
    if (!facts.tools.has('sha256sum')) {
      throw fail('UNSUPPORTED_PLATFORM', `${target}: sha256sum is missing on the host, so the upload cannot be verified; nothing was changed`, 'install coreutils (or BusyBox with sha256sum) on the host');
    }
    result.init = init;
    const binary = await binaryInfo(findBinary(opts.binary, facts.arch!, target));
    const needKb = Math.ceil(binary.bytes / 1024) + 1024;
    for (const [where, free] of [[opts.layout.bin.replace(/\/[^/]+$/, ''), facts.freeKbBin], ...(result.sudo ? [['/tmp', facts.freeKbTmp] as const] : [])] as const) {
      if (free < needKb) {
        throw fail(
          'NO_DISK_SPACE',
          `${target}: not enough disk space for the binary in ${where}: ${(needKb / 1024).toFixed(0)} MiB needed, ${(free / 1024).toFixed(0)} MiB free; nothing was changed`,
          `free some space there${where === '/tmp' ? '' : ', or install elsewhere with --prefix DIR'}`,
        );
      }
    }
    const config = agentConfig(opts, facts, existing, target);
    result.name = config.name;
    const api = opts.api ?? config.server;
    if (!config.token && !existing.config) {
      // A first install enrolls with a token of its own: one use, this agent's name only, an hour.
      config.token = opts.dryRun ? '<a one-use enrollment token, made at install>' : await mintToken(deps, api, config.name, opts.credentials, target);
    }
    const plan = planInstall({
      layout: opts.layout,
      facts,
      existing,
      binary,
      config,
      serviceUser: opts.runAs,
      init,
      nonce: randomBytes(4).toString('hex'),
      now: new Date().toISOString(),
    });
    result.notes.push(...plan.notes);
    result.plan = [...plan.actions, ...plan.commit('<the version the check printed>')];
    result.rollback = plan.rollback;
    if (opts.dryRun) {
      result.ok = true;
      result.outcome = 'planned';
      return result;
    }

    const before = opts.waitMs > 0 ? (await lookUp(deps, api, config.name, opts.credentials)).agent : undefined;
    const ctx = { user: opts.runAs, bin: opts.layout.bin };
    let version = '';
    try {
      for (const action of plan.actions) {
        const out = await runAction(host, action, target, events, ctx);
        if (action.id === 'check') version = out.trim().split('\n').pop() ?? '';
      }
      result.version = version;
      if (opts.waitMs > 0) {
        events.step?.(target, `wait for ${config.name} to connect to ${api}`, false);
        const seen = await waitConnected(deps, api, config.name, before, version, opts.waitMs, opts.credentials);
        if (!seen.agent) {
          const logs = await agentLogs(host, opts, init, result.sudo);
          const why = seen.answered
            ? `the agent ${config.name} did not connect to ${config.server} within ${opts.waitMs / 1000} s${api === config.server ? '' : ` (checked at ${api})`}`
            : `no control plane answered this command at ${api} within ${opts.waitMs / 1000} s, so the agent could not be seen connecting`;
          throw fail(
            'NOT_CONNECTED',
            `${target}: ${why}` + (logs ? `; its last log lines:\n${logs.split('\n').map((l) => `    ${l}`).join('\n')}` : ''),
            seen.answered
              ? `check that the host can reach ${config.server} and that --token matches the control plane's --enroll-token`
              : `pass --api with the address this machine reaches the control plane at, or --no-wait to skip the check`,
          );
        }
      }
      for (const action of plan.commit(version)) await runAction(host, action, target, events, ctx);
    } catch (err) {
      const error = asInstallError(err, target);
      const failures = await rollBack(host, plan, target, events);
      const state =
        failures.length === 0
          ? plan.rollback.some((a) => a.id === 'rollback-remove')
            ? 'rolled back: the host is as it was before the install'
            : 'rolled back: the previous agent is restored'
          : `the rollback failed too (${failures.join('; ')}); run the install again to complete it, or uninstall`;
      throw new InstallError(`${error.message}\n  ${state}`, { reason: error.reason, hint: error.hint, cause: error, rolledBack: failures.length === 0 });
    }
    result.ok = true;
    result.outcome = plan.kind === 'install' ? 'installed' : plan.kind === 'upgrade' ? 'upgraded' : 'completed';
  } catch (err) {
    result.error = asInstallError(err, target);
  } finally {
    host?.close();
    result.ms = Date.now() - started;
  }
  return result;
}

/** Options of `uninstallAgent` beyond how to reach the host. */
export interface UninstallExtra {
  /** Also remove the state dir, the log, and the service user install created. */
  purge: boolean;
}

/** Uninstalls the agent from one host. Never throws: failures are in the result. */
export async function uninstallAgent(
  opts: ResolvedInstallOptions,
  extra: UninstallExtra,
  events: InstallEvents = {},
  deps: InstallDeps = defaultDeps,
): Promise<HostResult> {
  const started = Date.now();
  const result = newResult(opts);
  const target = result.target;
  let host: RemoteHost | undefined;
  try {
    events.step?.(target, 'connect', false);
    host = await deps.connect({ target: opts.target, identity: opts.identity, knownHosts: opts.knownHosts, acceptNewHostKey: opts.acceptNewHostKey, connectTimeoutMs: opts.connectTimeoutMs });
    const { facts, existing } = await probe(host, opts, target, result, events).catch((err: unknown) => {
      // An unsupported architecture cannot have an agent; anything else is a real failure.
      if (err instanceof InstallError && err.reason === 'UNSUPPORTED_PLATFORM') return { facts: undefined, existing: undefined };
      throw err;
    });
    if (!facts || !existing) {
      result.ok = true;
      result.outcome = 'not-installed';
      return result;
    }
    result.name = existing.config?.name ?? existing.manifest?.name;
    result.init = existing.manifest?.init ?? (existing.unit ? 'systemd' : existing.supervisor ? 'supervisor' : undefined);
    result.version = existing.manifest?.agentVersion || undefined;
    const plan = planUninstall({ layout: opts.layout, facts, existing, purge: extra.purge });
    result.notes.push(...plan.notes);
    result.plan = plan.actions;
    if (plan.actions.length === 0) {
      result.ok = true;
      result.outcome = 'not-installed';
      return result;
    }
    if (opts.dryRun) {
      result.ok = true;
      result.outcome = 'planned';
      return result;
    }
    for (const action of plan.actions) await runAction(host, action, target, events, { user: opts.runAs, bin: opts.layout.bin });
    result.ok = true;
    result.outcome = 'uninstalled';
  } catch (err) {
    result.error = asInstallError(err, target);
  } finally {
    host?.close();
    result.ms = Date.now() - started;
  }
  return result;
}
