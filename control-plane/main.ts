#!/usr/bin/env node
/** `drover server`: the control plane process. Builds the transports and wires the parts. */
import * as grpc from '@grpc/grpc-js';
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node';
import { existsSync, mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { droverV1 } from '../proto/index.js';
import { AgentSessions } from './agent-sessions.js';
import { fleetService } from './api/fleet-api.js';
import { runService } from './api/run-api.js';
import { deviceService } from './api/device-api.js';
import { workflowService } from './api/workflow-api.js';
import { accessService, enrollHandler } from './api/access-api.js';
import { auditService } from './api/audit-api.js';
import { statsService } from './api/stats-api.js';
import { triggerService } from './api/trigger-api.js';
import { Schedules } from './triggers/schedules.js';
import { fleetSample } from './metrics/fleet-sampler.js';
import { StatsService } from './metrics/stats.js';
import { secretService } from './api/secret-api.js';
import { AuditLog } from './security/audit.js';
import { SecretBox, SecretKeyError } from './security/secret-box.js';
import { Secrets } from './secrets.js';
import { accessInterceptor, bearerToken, FailureThrottle } from './security/access.js';
import { bootstrapAdminToken } from './security/bootstrap.js';
import { Credentials } from './security/credentials.js';
import { CertificateError, Pki } from './security/pki.js';
import { ControlSigner } from './security/signer.js';
import { Tokens } from './security/tokens.js';
import { NatsAuth } from './security/nats-auth.js';
import { writeSecretFile } from '../common/secret-file.js';
import { DirLockedError, lockDir } from '../common/dir-lock.js';
import { ConfigError } from '../common/errors.js';
import { parseDuration } from '../common/duration.js';
import { triggerSubjectProblem } from '../common/nats-subject.js';
import { NATS_OPTION_HELP, natsConnectHint, natsConnectionOptions, resolveNatsOptions, type NatsOptionInput, type NatsOptions } from '../common/nats-options.js';
import { clusterStatus, formatStatus } from './leadership/status.js';
import { DEFAULTS, hostOf, resolveConfig, type ServerConfig } from './config.js';
import { Devices } from './devices.js';
import { Fleet } from './fleet.js';
import { createLogger, type Logger } from './log.js';
import { setListenerErrorHandler } from './events.js';
import { Runs } from './runs.js';
import { LaunchKeys } from './launch-keys.js';
import { LowdbStore } from './store/lowdb-store.js';
import { JetStreamStore } from './store/jetstream-store.js';
import { standByUntilLeader } from './leadership/elect.js';
import type { LeaderLease } from './leadership/lease.js';
import { StoreError, type CredentialRecord, type Store } from './store/store.js';
import { Workflows } from './workflows.js';
import { grpcAgentService } from './transport/grpc-agent-link.js';
import { NatsAgentLink } from './transport/nats-agent-link.js';
import { HttpAuth } from './http/auth.js';
import { approverOf } from './approvals.js';
import { AgentHistory } from './http/history.js';
import { DroverMetrics } from './http/prometheus.js';
import { startHttp, type HttpPort } from './http/server.js';
import { Webhooks } from './triggers/webhooks.js';
import { NatsTriggers } from './triggers/nats-triggers.js';
import { triggerWarnings } from './triggers/warnings.js';

/**
 * The NATS connection for the agent link: fails at start with the reason
 * (nothing listening, refused credentials), then reconnects forever.
 * noEcho: the control plane subscribes to drover.v1.agent.> and need not
 * receive its own down messages.
 */
async function connectNats(o: NatsOptions, log: Logger): Promise<NatsConnection> {
  let nc: NatsConnection;
  try {
    nc = await natsConnect({ ...natsConnectionOptions(o, 'drover-server'), noEcho: true });
  } catch (err) {
    const e = err as Error;
    throw new ConfigError(`cannot connect to NATS at ${o.servers.join(', ')}: ${e.message}; ${natsConnectHint(e)}`);
  }
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') log.warn({ server: s.server }, 'NATS connection lost; reconnecting');
      else if (s.type === 'reconnect') log.info({ server: s.server }, 'NATS connection back');
      else if (s.type === 'error') log.error({ err: s.error }, 'NATS error');
      else if (s.type === 'slowConsumer') log.error({ pending: s.pending }, 'NATS slow consumer: agent messages are being dropped');
    }
  })();
  void nc.closed().then((err) => {
    if (err) log.error({ err }, 'NATS connection closed for good; NATS agents cannot reach this control plane until it restarts');
  });
  return nc;
}

/**
 * TLS for gRPC. Client certificates are asked for but not required at the
 * TLS layer: API callers present a bearer token instead, and an agent that
 * has not enrolled yet has none. The access interceptor decides per RPC.
 * One provider serves both the CA and the server identity (certificate plus
 * the CA, so an enrolling agent sees the CA in the chain and checks its hash).
 */
function tlsCredentials(pki: Pki): grpc.ServerCredentials {
  const ca = { caCertificate: Buffer.from(pki.caPem) };
  const identity = { certificate: Buffer.from(pki.serverCertPem + pki.caPem), privateKey: Buffer.from(pki.serverKeyPem) };
  // Listeners are told on the next tick: grpc-js registers its own watcher only after adding them.
  const provider = {
    addCaCertificateListener: (l: (u: typeof ca) => void) => setImmediate(() => l(ca)),
    removeCaCertificateListener: () => {},
    addIdentityCertificateListener: (l: (u: typeof identity) => void) => setImmediate(() => l(identity)),
    removeIdentityCertificateListener: () => {},
  };
  return grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
}

/**
 * With no NATS credentials configured, the control plane uses the user it
 * signs for itself (<data-dir>/nats-control-plane.creds), which a nats-server
 * running `drover server nats-config` accepts; a server without auth ignores it.
 */
async function withOwnNatsCreds(o: NatsOptions, dataDir: string, auth: NatsAuth, log: Logger): Promise<NatsOptions> {
  if (o.user || o.token || o.credsFile || o.nkeySeedFile) return o;
  const file = join(dataDir, 'nats-control-plane.creds');
  // Made afresh at each start, so an upgrade that widens its permissions (NATS triggers) takes effect; an unwritable disk keeps the old file.
  try {
    writeSecretFile(file, await auth.controlPlaneCreds());
  } catch (err) {
    if (!existsSync(file)) throw new ConfigError(`cannot write the control plane's NATS credentials ${file}: ${(err as Error).message}; free space or fix the data dir's permissions`);
    log.warn({ file, err: (err as Error).message }, 'could not renew the NATS credentials file; using the one there is');
  }
  return { ...o, credsFile: file };
}

/** `drover server nats-config --data-dir D`: prints the nats-server configuration for this control plane's agents. */
async function printNatsConfig(argv: string[]) {
  const cmd = new Command('drover server nats-config')
    .description(
      "Print the nats-server configuration (operator, system account, MEMORY resolver) under which each agent's NATS credentials may use only its own subjects. Save it and start nats-server with -c FILE (or include it), then run drover server --nats with the same --data-dir.",
    )
    .option('--data-dir <dir>', `the control plane's data dir (env DROVER_DATA_DIR) (default: ${DEFAULTS.dataDir})`)
    .option('--leaf-listen <host:port>', "central server: also accept sites' leaf nodes on this address (docs/scale-out.md)")
    .option('--leaf-advertise <host:port>', 'with --leaf-listen: the address sites reach it at, when not that one (a load balancer, NAT)')
    .option('--leaf-remote <url>', "a site's server: connect as a leaf node to the central server at this nats-leaf:// URL")
    .option('--leaf-creds <file>', 'with --leaf-remote: the site\'s credentials file (from drover server nats-creds --leaf)')
    .addHelpText(
      'after',
      '\nExamples:\n  drover server nats-config --data-dir /var/lib/drover > /etc/nats/drover.conf\n  nats-server -c /etc/nats/drover.conf\n\n  # a central server that sites connect to, and one site\'s leaf node\n  drover server nats-config --leaf-listen 0.0.0.0:7422 > central.conf\n  drover server nats-creds --leaf --name ber1 > ber1-leaf.creds\n  drover server nats-config --leaf-remote nats-leaf://central.example:7422 --leaf-creds /etc/nats/ber1-leaf.creds > ber1.conf',
    )
    .action(async (opts: { dataDir?: string; leafListen?: string; leafAdvertise?: string; leafRemote?: string; leafCreds?: string }) => {
      if (opts.leafAdvertise && !opts.leafListen) throw new ConfigError('drover server nats-config: --leaf-advertise goes with --leaf-listen HOST:PORT');
      if (opts.leafAdvertise && !/^[^\s":]+:\d{1,5}$/.test(opts.leafAdvertise)) throw new ConfigError(`drover server nats-config: --leaf-advertise "${opts.leafAdvertise}" is not HOST:PORT`);
      if (opts.leafRemote && !opts.leafCreds) throw new ConfigError('drover server nats-config: --leaf-remote needs --leaf-creds FILE (make it with `drover server nats-creds --leaf --name SITE`)');
      if (opts.leafCreds && !opts.leafRemote) throw new ConfigError('drover server nats-config: --leaf-creds goes with --leaf-remote URL');
      if (opts.leafRemote && !/^nats-leaf:\/\/[^\s"]+$/.test(opts.leafRemote)) throw new ConfigError(`drover server nats-config: --leaf-remote "${opts.leafRemote}" is not a nats-leaf://HOST:PORT URL`);
      if (opts.leafListen && !/^[^\s":]+:\d{1,5}$/.test(opts.leafListen)) throw new ConfigError(`drover server nats-config: --leaf-listen "${opts.leafListen}" is not HOST:PORT`);
      if (opts.leafCreds && /["\s]/.test(opts.leafCreds)) throw new ConfigError('drover server nats-config: --leaf-creds must be a path without spaces or quotes');
      const dataDir = opts.dataDir ?? process.env.DROVER_DATA_DIR ?? DEFAULTS.dataDir;
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      process.stdout.write(await NatsAuth.open(dataDir).serverConfig({ listen: opts.leafListen, advertise: opts.leafAdvertise, remote: opts.leafRemote, credentials: opts.leafCreds }));
    });
  await cmd.parseAsync(argv, { from: 'user' });
}

/** `drover server nats-creds --name N --publish SUBJECTS`: prints NATS credentials for a system that publishes events for NATS triggers. */
async function printNatsCreds(argv: string[]) {
  const cmd = new Command('drover server nats-creds')
    .description(
      "Print NATS credentials (a .creds file) for a system that publishes events to NATS triggers: it may publish only on the subjects given, and read the answers to its requests; or, with --leaf, for a site's leaf node, whose link carries the agents' subjects only. Signed by this control plane's NATS account, so a nats-server running `drover server nats-config` accepts them. Keep the output secret.",
    )
    .requiredOption('--name <name>', 'who the credentials are for (e.g. hr-system); its requests use the inbox prefix _INBOX.<name>')
    .option('--publish <subjects>', 'subjects it may publish on, comma-separated; wildcards * and > allowed, not under drover. (e.g. alarms.>)')
    .option('--leaf', "instead: credentials for a site's leaf node, which carry the agents' subjects (docs/scale-out.md)")
    .option('--expires <duration>', 'how long they are valid, or never (default: 90d)', '90d')
    .option('--data-dir <dir>', `the control plane's data dir (env DROVER_DATA_DIR) (default: ${DEFAULTS.dataDir})`)
    .addHelpText(
      'after',
      "\nExample:\n  drover server nats-creds --name alarm-relay --publish 'alarms.>' --expires 90d > alarm-relay.creds\n  nats --creds alarm-relay.creds --inbox-prefix _INBOX.alarm-relay request alarms.rack4 '{\"site\":\"ber1\",\"id\":\"a-17\"}'",
    )
    .action(async (opts: { name: string; publish?: string; leaf?: boolean; expires: string; dataDir?: string }) => {
      const subjects = (opts.publish ?? '').split(',').map((x) => x.trim()).filter(Boolean);
      const problems = subjects.map((x) => triggerSubjectProblem(x)).filter((x): x is string => !!x);
      if (opts.leaf && opts.publish !== undefined) problems.push('--leaf and --publish do not go together: a leaf node carries the agents\' subjects only');
      else if (!opts.leaf && !subjects.length) problems.push('--publish names no subject (or give --leaf for a site\'s leaf node)');
      if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(opts.name)) problems.push(`--name "${opts.name.slice(0, 70)}" must be 1-64 letters, digits, dashes or underscores, starting with a letter or digit`);
      let expiresMs = 0;
      if (opts.expires !== 'never') {
        const ms = parseDuration(opts.expires);
        if (ms === undefined || ms <= 0) problems.push(`--expires "${opts.expires}" is not a duration like 12h or 90d (or never)`);
        else expiresMs = Date.now() + ms;
      }
      if (problems.length) throw new ConfigError(`drover server nats-creds: ${problems.join('; ')}`);
      const dataDir = opts.dataDir ?? process.env.DROVER_DATA_DIR ?? DEFAULTS.dataDir;
      if (!existsSync(join(dataDir, 'nats-account.nk'))) {
        throw new ConfigError(`${dataDir} holds no NATS account yet; run \`drover server nats-config --data-dir ${dataDir}\` first (or pass the control plane's --data-dir)`);
      }
      const auth = NatsAuth.open(dataDir);
      process.stdout.write(await (opts.leaf ? auth.leafCreds(opts.name, expiresMs) : auth.publisherCreds(opts.name, subjects, expiresMs)));
    });
  await cmd.parseAsync(argv, { from: 'user' });
}

/** `drover server status`: the replicas, the leader and its epoch, and the state stream's replication, from JetStream. */
async function printStatus(argv: string[]) {
  const cmd = new Command('drover server status')
    .description(
      "Show a replicated control plane (--store jetstream): its live replicas, the leader and its fencing epoch, and how the state stream's NATS replicas keep up. Read from JetStream with this control plane's NATS user (the data dir's account key), so it answers even while no replica leads. Exits 1 when no leader is elected.",
    )
    .option('--data-dir <dir>', `a replica's data dir (env DROVER_DATA_DIR) (default: ${DEFAULTS.dataDir})`)
    .option('--nats <url>', "the NATS servers the replicas use: nats://HOST:PORT or tls://HOST:PORT, several comma-separated (env DROVER_NATS)")
    .option('-o, --output <format>', 'table or json', 'table');
  for (const [flags, text] of NATS_OPTION_HELP) cmd.option(flags, text);
  cmd
    .addHelpText('after', '\nExamples:\n  drover server status --data-dir /var/lib/drover --nats nats://n1:4222,nats://n2:4222,nats://n3:4222\n  drover server status --nats nats://n1:4222 -o json | jq -r .leader.address')
    .action(async (opts: NatsOptionInput & { dataDir?: string; output: string }) => {
      if (opts.output !== 'table' && opts.output !== 'json') throw new ConfigError(`-o "${opts.output}" is not table or json`);
      const nats = resolveNatsOptions({}, opts, process.env);
      if (!nats) throw new ConfigError('drover server status reads JetStream: give the NATS servers with --nats URL[,URL…] (or DROVER_NATS), as the replicas have');
      const dataDir = opts.dataDir ?? process.env.DROVER_DATA_DIR ?? DEFAULTS.dataDir;
      if (!existsSync(join(dataDir, 'nats-account.nk')) && !(nats.user || nats.token || nats.credsFile || nats.nkeySeedFile)) {
        throw new ConfigError(`${dataDir} holds no NATS account; pass a replica's --data-dir (or --nats-creds)`);
      }
      const log = createLogger('silent');
      const nc = await connectNats(await withOwnNatsCreds(nats, dataDir, NatsAuth.open(dataDir), log), log);
      try {
        const status = await clusterStatus(nc).catch((err: Error) => {
          throw new ConfigError(`cannot read the control plane's state from JetStream on ${nc.getServer()}: ${err.message}; is a majority of the NATS cluster up, and has a replica with --store jetstream started there once?`);
        });
        process.stdout.write(opts.output === 'json' ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
        if (!status.leader) process.exitCode = 1;
      } finally {
        await nc.close();
      }
    });
  await cmd.parseAsync(argv, { from: 'user' });
}

/** The CA, server certificate, signing key and first admin token, as the first start makes them. */
async function initSecurity(cfg: ServerConfig, store: Store, now: () => number) {
  const pki = await Pki.open({ dataDir: cfg.dataDir, hosts: securityHosts(cfg), now });
  const tokens = new Tokens(store, pki.caHash, now);
  const adminTokenFile = await bootstrapAdminToken(cfg.dataDir, tokens, store);
  return { pki, tokens, adminTokenFile };
}

/** `drover server init`: makes the data dir's CA, certificates and first admin token, then exits. */
async function init(argv: string[]) {
  const cmd = new Command('drover server init')
    .description('Create the data dir with its CA (ca.pem), server certificate, control-message key and first admin token (admin.token), all 0600, and exit. The first start of `drover server` does the same; existing files are kept.')
    .option('--listen <host:port>', `the address the server will listen on (its certificate names it) (default: ${DEFAULTS.listen})`)
    .option('--advertise <hosts>', 'extra host names or addresses, comma-separated, for the server certificate')
    .option('--data-dir <dir>', `where state is kept (env DROVER_DATA_DIR) (default: ${DEFAULTS.dataDir})`)
    .action(async (opts: Record<string, unknown>) => {
      const cfg = resolveConfig(opts);
      const release = lockDir(cfg.dataDir, 'drover server init');
      const store = new LowdbStore({ dataDir: cfg.dataDir, maxRuns: cfg.maxRuns });
      await store.open();
      const { adminTokenFile } = await initSecurity(cfg, store, () => Date.now());
      await store.close();
      release();
      process.stdout.write(`CA certificate: ${join(cfg.dataDir, 'ca.pem')}\nadmin token:    ${adminTokenFile}\n`);
    });
  await cmd.parseAsync(argv, { from: 'user' });
}

/** Host names the server certificate names. */
function securityHosts(cfg: ServerConfig): string[] {
  return [...new Set([hostOf(cfg.listen), ...(cfg.http ? [hostOf(cfg.http)] : []), hostname(), ...cfg.advertise])];
}

async function serve(cfg: ServerConfig) {
  let onDeposed: (reason: string) => void = () => undefined;
  // One control plane per data dir: two writers on one store lose data.
  lockDir(cfg.dataDir, 'drover server');
  const log = createLogger(cfg.logLevel);
  setListenerErrorHandler((err) => log.error({ err }, 'a watcher of changes failed; the other watchers and the run went on'));
  const metrics = new DroverMetrics();
  const natsAuth = NatsAuth.open(cfg.dataDir);
  // The JetStream store needs NATS before anything reads the state; otherwise NATS is connected once the API listens.
  let nc = cfg.store === 'jetstream' && cfg.nats ? await connectNats(await withOwnNatsCreds(cfg.nats, cfg.dataDir, natsAuth, log), log.child({ component: 'nats' })) : undefined;
  const storeLog = log.child({ component: 'store' });
  const onWrite = (s: number) => metrics.storeWrite(s);
  // Until the tokens are loaded (a standby checks none: it only names the leader), calls pass through.
  let interceptor: grpc.ServerInterceptor = (_method, call) => new grpc.ServerInterceptingCall(call);
  const server = new grpc.Server({
    // Channelz (grpc-js's introspection, which drover does not serve) costs CPU and memory per agent stream.
    'grpc.enable_channelz': 0,
    'grpc.keepalive_time_ms': 15_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    interceptors: [(method, call) => interceptor(method, call)],
  });
  // Replicated: serve as a standby until this replica holds the leader lease; a leader that loses it stops at once.
  let lease: LeaderLease | undefined;
  let boundPort: number | undefined;
  if (nc) {
    const deposed = (reason: string) => {
      log.fatal({ reason, epoch: lease?.epoch }, 'no longer the leader: stopping without another write; start it again to rejoin as a standby');
      process.stderr.write(`drover server: no longer the leader (${reason}); exiting (code 75) without another write. Run it under a service manager that restarts it (Restart=always): it rejoins as a standby\n`);
      process.exit(75);
    };
    const pki = await Pki.open({ dataDir: cfg.dataDir, hosts: securityHosts(cfg), now: () => Date.now() });
    const won = await standByUntilLeader({ server, nc, listen: cfg.listen, advertise: cfg.advertise, http: cfg.http, replicas: cfg.storeReplicas, leaseMs: cfg.leaseMs, creds: cfg.insecure ? grpc.ServerCredentials.createInsecure() : tlsCredentials(pki), log: log.child({ component: 'leadership' }), onLost: deposed });
    lease = won.lease;
    boundPort = won.port;
    cfg = { ...cfg, listen: won.listen };
    onDeposed = deposed;
  }
  const store: Store = nc
    ? new JetStreamStore({ nc, dataDir: cfg.dataDir, replicas: cfg.storeReplicas, maxRuns: cfg.maxRuns, log: storeLog, onWrite, leadership: lease, onFenced: (reason) => onDeposed(`the state stream refused a write: ${reason}`) })
    : new LowdbStore({ dataDir: cfg.dataDir, maxRuns: cfg.maxRuns, log: storeLog, onWrite });
  const recovered = await store.open();
  if (recovered) log.error({ dataDir: cfg.dataDir }, recovered);
  const now = () => Date.now();
  const fleet = new Fleet(store, now);
  const history = new AgentHistory(fleet);
  const workflows = new Workflows(store, now);
  const devices = new Devices(store, fleet, now);
  const runs = new Runs(store, fleet, workflows, log.child({ component: 'runs' }), now, cfg.lostAfterMs, cfg.stepDeadlineSlackMs);
  const audit = await AuditLog.open(cfg.dataDir, log.child({ component: 'audit' }));
  const secretKey = SecretBox.load(cfg.dataDir);
  const secrets = new Secrets(store, secretKey.box, audit, now);
  runs.secrets = secrets;
  runs.keys = new LaunchKeys(store, now, cfg.idempotencyRetentionMs);
  runs.resume();
  // Liveness and the step-deadline backstop, once a second.
  setInterval(() => {
    for (const agent of fleet.sweep(cfg.disconnectAfterMs, cfg.lostAfterMs)) runs.agentLost(agent);
    runs.sweepDeadlines();
  }, 1000).unref();
  const { pki, tokens, adminTokenFile } = await initSecurity(cfg, store, now);
  const credentials = new Credentials({ store, pki, tokens, now, certTtlMs: cfg.agentCertTtlMs, approve: cfg.enrollApprove });
  const throttle = new FailureThrottle(now);
  const signer = new ControlSigner(pki.controlKey, now, lease?.epoch ?? 0);
  const natsJwt = async (c: CredentialRecord) => (c.natsPublicKey ? natsAuth.agentJwt(c.name, c.natsPublicKey, c.expiresMs) : '');
  const sessions = new AgentSessions(fleet, runs, store, log.child({ component: 'agents' }), {
    heartbeatIntervalMs: cfg.heartbeatIntervalMs,
    signer,
    credentials,
    now,
    natsJwt,
    audit,
    mayAct: lease && (() => lease.valid()),
  });
  // The fleet's utilisation history (drover stats), durable in the data dir.
  setInterval(() => store.appendFleetSample(fleetSample(fleet.list(), now())), cfg.fleetSampleIntervalMs).unref();
  /** The four metrics, for the gRPC API and anything else in this process that shows them. */
  const stats = new StatsService(store, now);
  // Certificates that expired on a live link (the agent did not renew), once a second.
  setInterval(() => sessions.sweepExpired(), 1000).unref();
  metrics.watch({ fleet, runs, store, sessions, stats });
  // Only a leader gets here: a standby serves no /metrics. Replication health of the state stream, every 5 s.
  metrics.leader.set(1);
  metrics.leaderEpoch.set(lease?.epoch ?? 0);
  if (store instanceof JetStreamStore) {
    setInterval(() => {
      void store.replication().then(
        (peers) => {
          metrics.storeReplicaLag.reset();
          metrics.storeReplicaCurrent.reset();
          for (const p of peers) {
            metrics.storeReplicaLag.set({ server: p.server }, p.lag);
            metrics.storeReplicaCurrent.set({ server: p.server }, p.current ? 1 : 0);
          }
        },
        () => undefined, // JetStream electing or unreachable: the store's own health says so
      );
    }, 5000).unref();
  }

  const v1 = droverV1();
  // A replica that just took the lease swaps each standby refusal for the real service: no moment without a handler.
  const serveService = (svc: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation) => {
    if (lease) server.removeService(svc);
    server.addService(svc, impl);
  };
  interceptor = accessInterceptor({ tokens, throttle, adminTokenFile, insecure: cfg.insecure, audit });
  serveService(
    v1.AgentService.service,
    grpcAgentService(sessions, {
      identify: (der) => {
        if (!der) return undefined; // --insecure: the interceptor let it through without a certificate
        const cert = credentials.authenticate(der);
        return { name: cert.name, serial: cert.serial, notAfterMs: cert.notAfterMs };
      },
      enroll: enrollHandler({ credentials, pki, throttle, natsJwt, log: log.child({ component: 'enroll' }) }),
    }),
  );
  serveService(
    v1.AccessService.service,
    accessService({
      tokens,
      credentials,
      revoked: (name) => {
        sessions.cutOff(name, `agent ${name} was revoked by an admin; it cannot connect again until it enrolls anew`);
        fleet.markLost(name);
        runs.agentLost(name, 'revoked by an admin');
        log.warn({ agent: name }, 'agent revoked: link closed, its certificates refused from now on');
      },
    }),
  );
  serveService(v1.FleetService.service, fleetService(fleet));
  serveService(
    v1.RunService.service,
    // The interceptor has checked the token by then; this reads it again to name the caller.
    runService(runs, store, (metadata) => approverOf(tokens, bearerToken(metadata))),
  );
  const triggerEnv = { workflows, secrets, http: Boolean(cfg.http), nats: Boolean(cfg.nats) };
  serveService(v1.WorkflowService.service, workflowService(runs, workflows, fleet, devices, (name) => triggerWarnings(triggerEnv, name)));
  serveService(v1.DeviceService.service, deviceService(devices));
  serveService(v1.SecretService.service, secretService(secrets));
  serveService(v1.AuditService.service, auditService(audit));
  serveService(v1.StatsService.service, statsService(stats));
  // Cron triggers: started once the API listens (below); catch-up after a restart happens then.
  const schedules = new Schedules({ store, workflows, submit: (req) => runs.submit(req), log: log.child({ component: 'schedules' }), now, audit });
  serveService(v1.TriggerService.service, triggerService(schedules, store));
  const port = boundPort ?? await new Promise<number>((resolve, reject) =>
    server.bindAsync(cfg.listen, cfg.insecure ? grpc.ServerCredentials.createInsecure() : tlsCredentials(pki), (err, p) => (err ? reject(err) : resolve(p))),
  ).catch((err: Error) => {
    throw new ConfigError(
      `cannot listen on ${cfg.listen}: ${err.message.replace(/^No address added out of total \d+ resolved/, 'address unavailable')}` +
        '; is another drover server running there? Choose another address with --listen HOST:PORT',
    );
  });
  const address = cfg.listen.replace(/:\d+$/, `:${port}`);
  let nats: { nc: NatsConnection; link: NatsAgentLink; triggers: NatsTriggers } | undefined;
  if (cfg.nats) {
    nc ??= await connectNats(await withOwnNatsCreds(cfg.nats, cfg.dataDir, natsAuth, log), log.child({ component: 'nats' }));
    const link = new NatsAgentLink(nc, sessions, { heartbeatIntervalMs: cfg.heartbeatIntervalMs, log: log.child({ component: 'nats-agents' }) });
    await link.start();
    const natsTriggers = new NatsTriggers({ nc, workflows, runs, audit, log: log.child({ component: 'nats-triggers' }), now });
    nats = { nc, link, triggers: natsTriggers };
    log.info({ nats: nc.getServer(), maxPayload: nc.info?.max_payload, triggerSubjects: natsTriggers.subjects() }, 'serving NATS agents and NATS triggers');
  }
  if (cfg.insecure) {
    log.warn({ address }, 'INSECURE: --insecure serves plaintext gRPC and trusts agents by the name they give; never use it beyond this machine');
    process.stderr.write(`WARNING: drover server --insecure: no TLS, agents are not authenticated. For local debugging only.\n`);
  }
  let http: HttpPort | undefined;
  if (cfg.http) {
    http = await startHttp({
      listen: cfg.http,
      tls: cfg.httpPlain ? undefined : { cert: pki.serverCertPem + pki.caPem, key: pki.serverKeyPem },
      auth: new HttpAuth({ tokens, throttle, audit, adminTokenFile, now }),
      metrics,
      feed: { fleet, runs, store, devices, history, audit, stats, log: log.child({ component: 'dashboard' }), now },
      log: log.child({ component: 'http' }),
      hooks: new Webhooks({ workflows, runs, store, secrets, audit, log: log.child({ component: 'webhooks' }), now }),
    });
    log.info({ url: http.url, tls: !cfg.httpPlain }, 'HTTP port listening (dashboard, /metrics, /healthz, /hooks/<name>)');
  }
  for (const w of workflows.triggers()) for (const warning of triggerWarnings(triggerEnv, w.workflow)) log.warn({ workflow: w.workflow }, warning);
  // Catch-up fires start in the background: a hundred missed fires need not hold the listening line back.
  void schedules.start();
  log.info({ address, dataDir: cfg.dataDir, store: cfg.store, schedules: schedules.list().length, agents: fleet.list().length, runs: store.listRuns().length, tls: !cfg.insecure }, 'control plane listening');
  // One plain line on stdout so scripts and `drover dev` can find the address.
  process.stdout.write(`drover server listening on ${address}\n`);
  process.stdout.write(`drover server CA certificate: ${join(cfg.dataDir, 'ca.pem')} (clients: --ca or DROVER_CA)\n`);
  process.stdout.write(`drover server admin token: ${adminTokenFile} (clients: --token or DROVER_TOKEN)\n`);
  if (nats) process.stdout.write(`drover server serving NATS agents via nats://${nats.nc.getServer()}\n`);
  if (lease) process.stdout.write(`drover server leading (epoch ${lease.epoch}, lease ${cfg.leaseMs} ms)\n`);
  if (http) process.stdout.write(`drover server dashboard on ${http.url}\n`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    schedules.stop();
    server.tryShutdown(() => undefined);
    void http?.close();
    setTimeout(() => server.forceShutdown(), 2000).unref();
    nats?.triggers.stop();
    nats?.link.stop();
    const drainNats = () => (nats ? Promise.race([nats.nc.drain(), new Promise((r) => setTimeout(r, 2000))]).catch(() => undefined) : Promise.resolve());
    // The lease goes last: a standby takes over once this replica's last batch is written.
    const closeStores = () => Promise.all([store.close(), audit.close()]).finally(() => lease?.resign());
    // The JetStream store writes its last batch over NATS: close it before the connection drains.
    void (cfg.store === 'jetstream' ? closeStores().then(drainNats) : drainNats().then(closeStores)).finally(() => process.exit(0));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

const program = new Command('drover server')
  .description('Run the Drover control plane: agents connect to it, the CLI and SDK talk to it.')
  .option('--listen <host:port>', `gRPC address for agents and API clients (env DROVER_LISTEN) (default: ${DEFAULTS.listen})`)
  .option('--data-dir <dir>', `where state and run logs are kept (env DROVER_DATA_DIR) (default: ${DEFAULTS.dataDir})`)
  .option('--log-level <level>', `fatal|error|warn|info|debug|trace|silent (env DROVER_LOG_LEVEL) (default: ${DEFAULTS.logLevel})`)
  .option('--heartbeat-interval-ms <ms>', `how often agents report (default: ${DEFAULTS.heartbeatIntervalMs})`, (v) => Number(v))
  .option('--max-runs <n>', `finished runs kept with their logs (default: ${DEFAULTS.maxRuns})`, (v) => Number(v))
  .option('--disconnect-after-ms <ms>', 'mark a silent agent disconnected after this (default: 3 heartbeat intervals)', (v) => Number(v))
  .option('--lost-after-ms <ms>', `mark a disconnected agent lost after this; its steps follow the workflow's onAgentLost (default: ${DEFAULTS.lostAfterMs})`, (v) => Number(v))
  .option('--fleet-sample-interval-ms <ms>', `how often a sample of the fleet's CPU and memory is stored for drover stats (default: ${DEFAULTS.fleetSampleIntervalMs})`, (v) => Number(v))
  .option('--step-deadline-slack-ms <ms>', `fail a step still running this long past its timeout (its agent stopped reporting) (default: ${DEFAULTS.stepDeadlineSlackMs})`, (v) => Number(v))
  .option('--advertise <hosts>', 'extra host names or addresses, comma-separated, that clients use to reach this server: the server certificate names them (env DROVER_ADVERTISE)')
  .option('--agent-cert-ttl <duration>', 'lifetime of agent certificates; agents renew at two thirds of it (default: 30d)')
  .option('--idempotency-retention <duration>', 'how long a launch\'s idempotency key (and a webhook delivery\'s) is remembered: a repeat within it starts nothing (default: 24h)')
  .option('--enroll-approve', 'enrollments wait until an admin runs `drover agent approve NAME`')
  .option('--insecure', 'LOOPBACK ONLY, for debugging: plaintext gRPC, agents trusted by the name they send (API tokens are still checked)')
  .option('--http <host:port>', 'also serve the dashboard, /metrics and /healthz on this address, over HTTPS with the server certificate (env DROVER_HTTP; off by default); see docs/security.md')
  .option('--http-plain', 'LOOPBACK ONLY: serve --http as plain HTTP instead of HTTPS')
  .option('--nats <url>', 'also serve agents over NATS: nats://HOST:PORT or tls://HOST:PORT, several comma-separated (env DROVER_NATS); see docs/nats.md')
  .option('--store <kind>', `where the state is kept: lowdb (the data dir) or jetstream (a replicated stream on the --nats servers; docs/scale-out.md) (env DROVER_STORE) (default: ${DEFAULTS.store})`)
  .option('--store-replicas <n>', `--store jetstream: replicas of the state (3 for a cluster, 1 for a single nats-server) (default: ${DEFAULTS.storeReplicas})`, (v) => Number(v))
  .option('--leader-lease <duration>', `--store jetstream: the leader lease; a standby replica takes over about this long after a dead leader's last renewal (default: 3s)`);
for (const [flags, text] of NATS_OPTION_HELP) program.option(flags, text);
program
  .option('--config <file>', 'YAML file with any of the options above (camelCase keys); flags and env win')
  .addHelpText(
    'after',
    '\nSubcommands:\n  init          create the CA, certificates and first admin token, then exit (drover server init --help)\n  status        the replicas of a replicated control plane, its leader and epoch (drover server status --help)\n  nats-config   print the nats-server configuration that confines each agent to its own subjects (drover server nats-config --help)\n  nats-creds    print NATS credentials for a system that publishes events to NATS triggers (drover server nats-creds --help)\n\nExamples:\n  drover server --listen 127.0.0.1:7400 --data-dir /var/lib/drover\n  DROVER_LOG_LEVEL=debug drover server\n  drover server --nats nats://nats.example:4222 --nats-creds /etc/drover/server.creds\n  drover server --store jetstream --nats nats://n1:4222,nats://n2:4222,nats://n3:4222',
  )
  .action(async (opts: Record<string, unknown>) => {
    try {
      await serve(resolveConfig(opts));
    } catch (err) {
      if (err instanceof ConfigError || err instanceof StoreError || err instanceof CertificateError || err instanceof SecretKeyError || err instanceof DirLockedError) {
        process.stderr.write(`error: ${err.message}\n`);
        process.exit(1);
      }
      throw err;
    }
  });

try {
  if (process.argv[2] === 'nats-config') await printNatsConfig(process.argv.slice(3));
  else if (process.argv[2] === 'nats-creds') await printNatsCreds(process.argv.slice(3));
  else if (process.argv[2] === 'init') await init(process.argv.slice(3));
  else if (process.argv[2] === 'status') await printStatus(process.argv.slice(3));
  else await program.parseAsync(process.argv);
} catch (err) {
  if (!(err instanceof ConfigError || err instanceof StoreError || err instanceof CertificateError || err instanceof SecretKeyError || err instanceof DirLockedError)) throw err;
  process.stderr.write(`error: ${err.message}\n`);
  process.exit(1);
}
