#!/usr/bin/env node
/** `drover agent` / `drover-agent`: dials the control plane and runs steps. Builds the link and wires the parts. */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { jwtAuthenticator } from '@nats-io/nats-core';
import { join } from 'node:path';
import { connect as natsConnect } from '@nats-io/transport-node';
import { Command } from 'commander';
import { ConfigError } from '../common/errors.js';
import { NATS_OPTION_HELP, natsConnectHint, natsConnectionOptions } from '../common/nats-options.js';
import { resolveConfig, SSH_DEFAULTS, type AgentConfig } from './config.js';
import { Connection } from './connection.js';
import { ControlVerifier } from './control.js';
import { enroll, IdentityError, loadIdentity, type Identity } from './identity.js';
import { DevicePool } from './executor/ssh/pool.js';
import { GrpcLink } from './link/grpc-link.js';
import type { AgentLink } from './link/link.js';
import { NatsLink } from './link/nats-link.js';
import { createLogger, type Logger } from './log.js';
import { Journal } from './journal.js';
import { Ledger } from './ledger.js';
import { Runtime } from './runtime.js';
import { collectFacts, Usage } from './telemetry.js';
import { PROGRAM, VERSION } from './version.js';
import { quietIpServerNameWarning } from '../common/tls.js';
import { DirLockedError, lockDir } from '../common/dir-lock.js';

quietIpServerNameWarning();

/**
 * gRPC (--server) or NATS (--nats). A NATS server that is not up yet is
 * waited for (and reconnected to forever); refused credentials end the agent.
 */
async function buildLink(cfg: AgentConfig, identity: Identity | undefined, log: Logger): Promise<AgentLink> {
  if (!cfg.nats) return new GrpcLink(cfg.server, identity && { caPem: identity.caPem, certPem: identity.certPem, keyPem: identity.keyPem });
  log.info({ nats: cfg.nats.servers }, 'connecting to NATS');
  const o = cfg.nats;
  // No NATS auth configured: the key made at enrollment and its JWT, read again at every (re)connect (renewals replace the JWT).
  const own = !(o.user || o.token || o.credsFile || o.nkeySeedFile) && identity && existsSync(identity.natsJwtFile);
  const options = natsConnectionOptions(o, `drover-agent ${cfg.name}`);
  if (own) {
    options.authenticator = jwtAuthenticator(
      () => readFileSync(identity.natsJwtFile, 'utf8').trim(),
      () => new TextEncoder().encode(readFileSync(identity.natsSeedFile, 'utf8').trim()),
    );
  }
  let nc;
  try {
    nc = await natsConnect({ ...options, waitOnFirstConnect: true });
  } catch (err) {
    const e = err as Error;
    throw new ConfigError(`cannot connect to NATS at ${cfg.nats.servers.join(', ')}: ${e.message}; ${natsConnectHint(e)}`);
  }
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') log.warn({ server: s.server }, 'NATS connection lost; reconnecting');
      else if (s.type === 'reconnect') log.info({ server: s.server }, 'NATS connection back');
      else if (s.type === 'error') log.error({ err: s.error }, 'NATS error');
    }
  })();
  // nats.js gives up only when the server keeps refusing the credentials: retrying cannot help.
  void nc.closed().then((err) => {
    const why = err ? err.message : 'closed';
    log.fatal({ err }, 'NATS connection closed for good');
    process.stderr.write(`error: the NATS connection closed for good (${why}); ${natsConnectHint(err || new Error(why))}\n`);
    process.exit(1);
  });
  return new NatsLink(nc, cfg.name, log);
}

/** This state dir's identity: made once, kept for its life (see Hello.instance_id). */
function instanceId(stateDir: string): string {
  const file = join(stateDir, 'instance-id');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    const id = randomUUID();
    writeFileSync(file, `${id}\n`, { mode: 0o600 });
    return id;
  }
}

/**
 * This agent's certificate identity: loaded from the state dir, or made now
 * by enrolling with the token. Undefined only with --insecure.
 */
async function identityOf(cfg: AgentConfig, log: Logger): Promise<Identity | undefined> {
  const id = loadIdentity(cfg.stateDir);
  if (id && id.name !== cfg.name) {
    throw new ConfigError(`${cfg.stateDir} holds the identity of agent "${id.name}", not "${cfg.name}": start it with --name ${id.name}, or give "${cfg.name}" a state dir of its own`);
  }
  if (id || cfg.insecure) return id;
  if (!cfg.token) {
    throw new ConfigError(
      'this agent has not enrolled yet: start it once with --token <enrollment token> (env DROVER_ENROLL_TOKEN); an admin makes one with `drover token create --enroll`',
    );
  }
  if (!cfg.server) throw new ConfigError('enrollment goes to the control plane\'s gRPC address: add --server HOST:PORT (with --nats too)');
  log.info({ server: cfg.server }, 'enrolling with the control plane');
  return enroll({ server: cfg.server, token: cfg.token, name: cfg.name, stateDir: cfg.stateDir, nats: !!cfg.nats, log });
}

async function runAgent(cfg: AgentConfig) {
  const log = createLogger(cfg.logLevel, cfg.name);
  mkdirSync(cfg.stateDir, { recursive: true, mode: 0o700 });
  // One agent per state dir: two writers on one journal and ledger would lose and repeat work.
  lockDir(cfg.stateDir, 'drover agent');
  if (cfg.insecure) log.warn('INSECURE: --insecure links in plaintext and does not verify control messages; for a local test only');
  const identity = await identityOf(cfg, log.child({ component: 'identity' }));
  const journal = new Journal(join(cfg.stateDir, 'journal'), cfg.journalMaxBytes);
  const recovered = journal.open();
  if (recovered.discardedBytes) {
    log.warn({ ...recovered }, 'the journal had a torn or corrupt tail (the agent was killed mid-write or the disk was damaged); the intact records were kept and the rest discarded');
  }
  // A full or failing disk: messages wait in memory, unsent, and the agent keeps going (agent/journal.ts).
  let failingSince = 0;
  journal.onFailing = (err) => {
    failingSince = Date.now();
    log.error({ err: err.message, dir: cfg.stateDir }, `cannot write the journal in ${cfg.stateDir} (${err.message}); messages wait in memory and nothing is sent until a write succeeds; retrying by itself`);
  };
  journal.onWritable = () => log.info({ dir: cfg.stateDir, failedMs: Date.now() - failingSince }, 'the journal can be written again; sending what waited');
  const ledger = new Ledger(join(cfg.stateDir, 'ledger.ndjson'));
  const lost = ledger.open();
  const facts = await collectFacts(VERSION);
  const ssh = new DevicePool({
    agentName: cfg.name,
    credentials: { files: cfg.credentials, dir: cfg.credentialsDir },
    hostKeys: { knownHosts: cfg.sshKnownHosts, acceptNew: cfg.sshAcceptNewHostKeys },
    connectTimeoutMs: cfg.sshConnectTimeoutMs,
    idleMs: cfg.sshIdleMs,
    log: log.child({ component: 'ssh' }),
  });
  const runtime = new Runtime({
    ledger,
    agentName: cfg.name,
    labels: cfg.labels,
    workDir: join(cfg.stateDir, 'work'),
    attemptsDir: join(cfg.stateDir, 'attempts'),
    fileRoots: cfg.fileRoots.length ? cfg.fileRoots : [join(cfg.stateDir, 'files')],
    fileAllowSpecialModes: cfg.fileAllowSpecialModes,
    egress: cfg.egress,
    facts: { ...facts },
    graceMs: cfg.graceMs,
    ssh,
    emit: (body) => journal.push(body),
    log: log.child({ component: 'runtime' }),
  });
  runtime.recover(lost, journal.logOffsets);
  const link = await buildLink(cfg, identity, log.child({ component: 'nats' }));
  const conn = new Connection({
    name: cfg.name,
    labels: cfg.labels,
    instanceId: instanceId(cfg.stateDir),
    verifier: new ControlVerifier(cfg.name, identity?.controlKey, cfg.stateDir),
    identity,
    stateDir: cfg.stateDir,
    onRenewed: (id) => {
      if (link instanceof GrpcLink) link.setTls({ caPem: id.caPem, certPem: id.certPem, keyPem: id.keyPem });
    },
    facts,
    link,
    journal,
    runtime,
    usage: new Usage(cfg.stateDir, journal),
    log: log.child({ component: 'link' }),
    onReject: (code, message) => {
      process.stderr.write(`error: the control plane refused this agent (${code}): ${message}\n`);
      if (code !== 'REVOKED' || !runtime.running) return process.exit(1);
      // A revoked agent does no more of the control plane's work: stop its steps (SIGTERM, then SIGKILL after the grace).
      stopSteps('this agent was revoked');
      setTimeout(() => process.exit(1), cfg.graceMs + 500);
    },
  });
  const stopSteps = (reason: string) => {
    for (const attempt of runtime.runningAttempts()) {
      const [runId, stepId] = attempt.split('/');
      runtime.cancel({ runId, stepId, reason });
    }
  };
  log.info({ server: link.address, labels: cfg.labels, stateDir: cfg.stateDir, version: VERSION }, 'agent starting');
  conn.start();
  const stop = (signal: string) => {
    // Those found running after a restart and not sent again yet count too.
    const running = runtime.runningAttempts().length;
    conn.stop();
    ssh.closeAll();
    if (!cfg.stopStepsOnExit || !running) {
      // Process steps run under their own supervisor: they go on, and the next start of this agent re-attaches to them.
      log.info({ signal, running }, running ? 'agent stopping; its running steps keep running and the next start re-attaches to them' : 'agent stopping');
      process.exit(0);
    }
    log.info({ signal, running }, 'agent stopping; stopping its running steps first (--stop-steps-on-exit)');
    stopSteps(`the agent stopped (${signal})`);
    const waitUntil = Date.now() + cfg.graceMs + 1000;
    const poll = setInterval(() => {
      if (runtime.runningAttempts().length > 0 && Date.now() < waitUntil) return;
      clearInterval(poll);
      journal.close();
      process.exit(0);
    }, 20);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

const program = new Command(PROGRAM)
  .description('Run a Drover agent: dial out to the control plane, report this host, and run the steps it is given.')
  .option('--server <host:port>', 'control plane address (env DROVER_SERVER) (default: 127.0.0.1:7400)')
  .option('--name <name>', 'unique agent name in the fleet (env DROVER_AGENT_NAME) (default: the hostname)')
  .option('--label <key=value>', 'a label for target selection; repeat for more (env DROVER_LABELS=k=v,k2=v2)', collect)
  .option('--state-dir <dir>', 'where the agent keeps its state and step work dirs (env DROVER_STATE_DIR) (default: .drover/agent/<name>)')
  .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (env DROVER_LOG_LEVEL) (default: info)')
  .option('--grace-ms <ms>', 'time between SIGTERM and SIGKILL when a step is cancelled or times out (default: 5000)', (v) => Number(v))
  .option('--journal-max-bytes <n>', 'disk bound of the journal of unacknowledged messages; past it new log output is dropped and counted (default: 268435456)', (v) => Number(v))
  .option('--stop-steps-on-exit', 'on SIGTERM or SIGINT, stop running steps (SIGTERM, then SIGKILL after --grace-ms) before exiting; without it they keep running and the next start of the agent re-attaches to them (an upgrade keeps its steps)')
  .option('--file-root <dir>', 'a directory file steps may write into; repeat for more (default: <state-dir>/files)', collect)
  .option('--file-allow-special-modes', 'file steps may set setuid, setgid and sticky bits (mode 4000, 2000, 1000); without it such a mode fails the step')
  .option('--http-allow <rule>', 'http steps connect only to destinations matching one of these: CIDR (10.0.0.0/8), IP or host pattern (*.example.com); repeat for more (default: any, minus link-local and metadata addresses)', collect)
  .option('--http-deny <rule>', 'http steps never connect to these (CIDR, IP or host pattern; deny wins over --http-allow); repeat for more. 169.254.0.0/16, fe80::/10, fd00:ec2::254 are denied unless an --http-allow CIDR or IP names them', collect)
  .option('--credential <name=file>', 'ssh steps: a credential the workflows refer to by NAME: a private key file (passphrase in FILE.passphrase) or a password file; repeat for more', collect)
  .option('--credentials-dir <dir>', 'ssh steps: where a credential not given with --credential is looked up as a file named NAME (default: <state-dir>/credentials)')
  .option('--ssh-known-hosts <file>', 'ssh steps: known_hosts file device host keys are checked against (default: <state-dir>/known_hosts; /etc/ssh/ssh_known_hosts is read too)')
  .option('--ssh-accept-new-host-keys', "ssh steps: add an unknown device's host key to --ssh-known-hosts on first contact (a changed key is always refused)")
  .option('--ssh-connect-timeout-ms <ms>', `ssh steps: give up on a device that does not finish the SSH handshake in this time (default: ${SSH_DEFAULTS.connectTimeoutMs})`, (v) => Number(v))
  .option('--ssh-idle-ms <ms>', `ssh steps: close a device session unused for this long (default: ${SSH_DEFAULTS.idleMs})`, (v) => Number(v))
  .option('--token <token>', 'enrollment token for the first start (env DROVER_ENROLL_TOKEN): the agent trades it for a certificate of its own and needs it no more (drover token create --enroll)')
  .option('--insecure', 'LOOPBACK ONLY, for debugging: plaintext link to a control plane on --insecure; no enrollment, control messages not verified')
  .option('--nats <url>', 'link over NATS instead of gRPC: nats://HOST:PORT or tls://HOST:PORT, several comma-separated (env DROVER_NATS); see docs/nats.md');
for (const [flags, text] of NATS_OPTION_HELP) program.option(flags, text);
program
  .option('--config <file>', 'YAML file with server, name, labels (a mapping), stateDir, logLevel, graceMs, token, nats, natsUser, ... (camelCase of the flags); env and flags win')
  .version(VERSION, '--version', 'print the version and build commit')
  .addHelpText(
    'after',
    `\nExamples:\n  ${PROGRAM} --server 10.0.0.5:7400 --name web-1 --label role=web --label site=ams\n  DROVER_SERVER=cp.example:7400 DROVER_LABELS=role=db ${PROGRAM}\n  ${PROGRAM} --name lab-proxy --label proxy=lab --credential lab-admin=/etc/drover/keys/lab_ed25519   # drives devices of network "lab" (docs/devices.md)\n  ${PROGRAM} --config /etc/drover/agent.yaml`,
  )
  .action(async (opts: Record<string, unknown>) => {
    try {
      await runAgent(resolveConfig(opts));
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`error: ${err.message}\n`);
        process.exit(2);
      }
      if (err instanceof IdentityError || err instanceof DirLockedError) {
        process.stderr.write(`error: ${err.message}\n`);
        process.exit(1);
      }
      throw err;
    }
  });

// No top-level await: the single-binary build bundles this file as CommonJS.
void program.parseAsync(process.argv);
