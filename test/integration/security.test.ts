/**
 * Identity and access against real processes and real TLS (docs/security.md):
 * what an attacker on 127.0.0.1 tries, and what the operator does about it.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { connect as natsConnect, headers as natsHeaders, jwtAuthenticator } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { droverV1, encodeMessage } from '../../proto/index.js';
import { DESCRIPTOR } from '../../proto/gen/descriptor.js';
import { downSubject, NATS_HEADER, upSubject } from '../../proto/nats.js';
import { RPC_RULES } from '../../control-plane/security/access.js';
import { DroverClient, PermissionDeniedError, UnauthenticatedError } from '../../sdk/index.js';
import { ENTRY, cli, startAgent, startNatsAgent, startServer, tempDir, workflowFile, waitFor, type ServerProc } from '../helpers/cluster.js';
import { startNatsServer } from '../helpers/nats.js';
import { rawAgent } from '../helpers/raw-agent.js';
import { spawn, spawnSync } from 'node:child_process';

const dir = tempDir('drover-security-');

const workflow = (name: string, text: string) => workflowFile(dir, name, text);

/** Every method of every service: [path, service, method, server-streaming]. */
function methods(): [string, string, string, boolean][] {
  const v1 = (DESCRIPTOR as unknown as { nested: { drover: { nested: { v1: { nested: Record<string, { methods?: Record<string, { responseStream?: boolean; requestStream?: boolean }> }> } } } } }).nested.drover.nested.v1.nested;
  return Object.entries(v1).flatMap(([svc, def]) =>
    Object.entries(def.methods ?? {}).map(([m, d]) => [`/drover.v1.${svc}/${m}`, svc, m, !!d.responseStream] as [string, string, string, boolean]),
  );
}

/** Calls one RPC with an empty request and an optional bearer token; resolves with the status code. */
function call(server: ServerProc, path: string, token?: string): Promise<grpc.status> {
  const client = new grpc.Client(server.address, grpc.credentials.createSsl(readFileSync(server.creds.caFile)));
  const md = new grpc.Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  const id = (x: Buffer) => x;
  return new Promise((resolve) => {
    const done = (code: grpc.status) => {
      client.close();
      resolve(code);
    };
    if (path.endsWith('/Connect')) {
      const c = client.makeBidiStreamRequest(path, id, id, md);
      c.on('error', (e: grpc.ServiceError) => done(e.code));
      c.on('data', () => undefined);
      c.on('status', (s: grpc.StatusObject) => done(s.code));
      return;
    }
    const stream = ['/WatchAgents', '/WatchRun', '/GetLogs'].some((s) => path.endsWith(s));
    if (stream) {
      const c = client.makeServerStreamRequest(path, id, id, Buffer.alloc(0), md);
      c.on('error', (e: grpc.ServiceError) => done(e.code));
      c.on('data', () => undefined);
      c.on('status', (s: grpc.StatusObject) => done(s.code));
      return;
    }
    client.makeUnaryRequest(path, id, id, Buffer.alloc(0), md, (err) => done(err ? err.code : grpc.status.OK));
  });
}

describe('security - API access', () => {
  let server: ServerProc;
  let admin: DroverClient;
  beforeAll(async () => {
    server = await startServer();
    admin = new DroverClient(server.clientOptions);
  });
  afterAll(() => admin?.close());

  it('security - every RPC without a token, with a wrong, an expired, a revoked or a too-weak token is refused, and nothing changes', async () => {
    const viewer = (await admin.access.createToken('viewer')).token;
    const expiring = (await admin.access.createToken('admin', { ttlMs: 1000 })).token;
    const revoked = await admin.access.createToken('admin');
    await admin.access.revokeToken(revoked.info.id);
    const tokensBefore = (await admin.access.listTokens()).length;
    await new Promise((r) => setTimeout(r, 1100));
    const all = methods();
    expect(all.length).toBe(Object.keys(RPC_RULES).length);
    // All at once: failures from one address are answered ever more slowly (up to 5 s each).
    const attempts: { what: string; want: grpc.status; got: Promise<grpc.status> }[] = [];
    const attempt = (path: string, token: string | undefined, want: grpc.status, what: string) => attempts.push({ what: `${path} ${what}`, want, got: call(server, path, token) });
    for (const [path] of all) {
      const rule = RPC_RULES[path];
      if (rule === 'enroll') continue;
      // API tokens do not make an agent: Connect needs a client certificate.
      if (rule === 'agent') attempt(path, server.creds.token, grpc.status.UNAUTHENTICATED, 'with an admin token');
      else {
        attempt(path, undefined, grpc.status.UNAUTHENTICATED, 'without a token');
        attempt(path, 'drover-api.0000.nope', grpc.status.UNAUTHENTICATED, 'with a wrong token');
        attempt(path, expiring, grpc.status.UNAUTHENTICATED, 'with an expired token');
        attempt(path, revoked.token, grpc.status.UNAUTHENTICATED, 'with a revoked token');
        if (rule !== 'viewer') attempt(path, viewer, grpc.status.PERMISSION_DENIED, 'as a viewer');
      }
    }
    for (const a of attempts) expect(await a.got, a.what).toBe(a.want);
    expect(attempts.length).toBeGreaterThan(100);
    const t0 = Date.now();
    expect(await call(server, '/drover.v1.FleetService/ListAgents', 'drover-api.0000.guess')).toBe(grpc.status.UNAUTHENTICATED);
    expect(Date.now() - t0, 'a guess after 100 failures waits').toBeGreaterThanOrEqual(4000);
    const t1 = Date.now();
    await admin.fleet.list();
    expect(Date.now() - t1, 'a valid call from the same address is not slowed').toBeLessThan(1000);
    expect(await admin.runs.list()).toEqual([]);
    expect(await admin.workflows.list()).toEqual([]);
    expect(await admin.devices.list()).toEqual([]);
    expect((await admin.access.listTokens()).length).toBe(tokensBefore);
  });

  it('security - the SDK reports UNAUTHENTICATED and PERMISSION_DENIED as typed errors with the fix; the CLI exits non-zero', async () => {
    // A control plane of its own: the one above now slows answers to this address's failures.
    const server = await startServer();
    const admin = new DroverClient(server.clientOptions);
    const anon = new DroverClient({ address: server.address, ca: server.creds.caFile });
    const err = await anon.fleet.list().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect((err as UnauthenticatedError).message).toMatch(/ListAgents needs an API token with the viewer role; none was sent/);
    expect((err as UnauthenticatedError).hint).toContain(join(server.dataDir, 'admin.token'));
    anon.close();
    const viewer = new DroverClient({ ...server.clientOptions, token: (await admin.access.createToken('viewer')).token });
    const denied = await viewer.access.listTokens().catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(PermissionDeniedError);
    expect(await viewer.access.whoami()).toMatchObject({ role: 'viewer' });
    viewer.close();
    const res = await cli(['token', 'list'], { ...server.env, DROVER_TOKEN: '' });
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/ListTokens needs an API token with the admin role/);
    admin.close();
  });

  it('security - a plaintext client, or one that does not trust the CA, is told what is wrong', async () => {
    const untrusting = new DroverClient({ address: server.address, token: server.creds.token });
    const err = (await untrusting.fleet.list().catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/presents a certificate this client does not trust/);
    untrusting.close();
    const plain = new DroverClient({ address: server.address, token: server.creds.token, insecure: true });
    await expect(plain.fleet.list()).rejects.toThrow();
    plain.close();
  });

  it('security - drover server init makes the CA and the first admin token, 0600, and never overwrites them', async () => {
    const d = tempDir('drover-init-');
    const first = spawnSync(process.execPath, [ENTRY.server, 'init', '--data-dir', d], { encoding: 'utf8' });
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toContain(`admin token:    ${join(d, 'admin.token')}`);
    const token = readFileSync(join(d, 'admin.token'), 'utf8');
    const ca = readFileSync(join(d, 'ca.pem'), 'utf8');
    for (const f of ['ca.pem', 'ca.key', 'admin.token', 'server.key', 'control-signing.key']) expect(statSync(join(d, f)).mode & 0o777, f).toBe(0o600);
    expect(spawnSync(process.execPath, [ENTRY.server, 'init', '--data-dir', d]).status).toBe(0);
    expect(readFileSync(join(d, 'admin.token'), 'utf8')).toBe(token);
    expect(readFileSync(join(d, 'ca.pem'), 'utf8')).toBe(ca);
    const started = await startServer({ dataDir: d });
    expect(started.creds.token).toBe(token.trim());
    await started.stop();
  });

  it('security - token create prints only the token; --insecure is refused off loopback', async () => {
    const res = await cli(['token', 'create', '--role', 'operator'], server.env);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^drover-api\.[0-9a-f]{12}\.[A-Za-z0-9_-]{43}\n$/);
    const enroll = await cli(['token', 'create', '--enroll', '--ttl', '10m', '--uses', '2'], server.env);
    expect(enroll.stdout).toMatch(/^drover-enroll\.[0-9a-f]{64}\.[0-9a-f]{12}\.[A-Za-z0-9_-]{43}\n$/);
    const insecure = spawn(process.execPath, [ENTRY.server, '--listen', '0.0.0.0:0', '--data-dir', tempDir(), '--insecure'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    insecure.stderr.on('data', (d: Buffer) => (err += d));
    expect(await new Promise((r) => insecure.once('exit', r))).toBe(1);
    expect(err).toMatch(/--insecure is refused on 0\.0\.0\.0:0/);
  });
});

function agentProcess(server: { address: string }, name: string, stateDir: string, token?: string) {
  const args = [ENTRY.agent, '--server', server.address, '--name', name, '--state-dir', stateDir, '--grace-ms', '500'];
  if (token) args.push('--token', token);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (out += d));
  return { child, output: () => out, exited: new Promise<number | null>((r) => child.once('exit', r)) };
}

describe('security - enrollment', () => {
  it('enrollment - a one-use token works once; again, expired, or from another control plane it is refused, and the agent says why', async () => {
    const server = await startServer();
    const admin = new DroverClient(server.clientOptions);
    const once = (await admin.access.createEnrollToken({ uses: 1 })).token;
    const firstDir = tempDir();
    const good = agentProcess(server, 'first', firstDir, once);
    await waitFor(async () => (await admin.fleet.get('first').catch(() => undefined))?.state === 'connected', 20_000, () => 'first to enroll and connect');
    expect(existsSync(join(firstDir, 'identity', 'agent.pem'))).toBe(true);

    const again = agentProcess(server, 'second', tempDir(), once);
    expect(await again.exited).toBe(1);
    expect(again.output()).toMatch(/refused to enroll this agent: enrollment refused: enrollment token \w+ was for 1 agent and is used up/);

    const short = (await admin.access.createEnrollToken({ ttlMs: 500 })).token;
    await new Promise((r) => setTimeout(r, 700));
    const late = agentProcess(server, 'late', tempDir(), short);
    expect(await late.exited).toBe(1);
    expect(late.output()).toMatch(/expired at/);

    const other = await startServer();
    const foreign = agentProcess(other, 'stray', tempDir(), once);
    expect(await foreign.exited).toBe(1);
    expect(foreign.output()).toMatch(/does not present the CA this enrollment token was made for .* Nothing was sent/);
    expect(other.output()).not.toMatch(/enrollment refused/);

    const none = agentProcess(server, 'bare', tempDir());
    expect(await none.exited).toBe(2);
    expect(none.output()).toMatch(/has not enrolled yet: start it once with --token/);
    expect((await admin.fleet.list()).map((a) => a.name)).toEqual(['first']);
    good.child.kill('SIGKILL');
    admin.close();
  });

  it('enrollment - with --enroll-approve the agent waits until an admin approves it, then connects', async () => {
    const server = await startServer({ args: ['--enroll-approve'] });
    const admin = new DroverClient(server.clientOptions);
    const token = (await admin.access.createEnrollToken({ uses: 1 })).token;
    const a = agentProcess(server, 'edge-7', tempDir(), token);
    await waitFor(async () => (await admin.access.listAgentCredentials()).some((c) => c.name === 'edge-7' && c.state === 'pending'), 20_000, () => 'a pending enrollment');
    // The agent says so right after the server recorded the request; its output may arrive a moment later.
    await waitFor(() => /waiting for approval; an admin runs: drover agent approve edge-7/.test(a.output()), 10_000, () => `the agent to say it waits:\n${a.output()}`);
    expect((await admin.fleet.list()).length).toBe(0);
    const res = await cli(['agent', 'approve', 'edge-7'], server.env);
    expect(res.stdout).toMatch(/agent edge-7 approved: certificate [0-9A-F]+ issued/);
    await waitFor(async () => (await admin.fleet.get('edge-7').catch(() => undefined))?.state === 'connected', 20_000, () => 'edge-7 to connect after approval');
    a.child.kill('SIGKILL');
    admin.close();
  });
});

describe('security - an agent speaks only for itself', () => {
  let server: ServerProc;
  let admin: DroverClient;
  beforeAll(async () => {
    server = await startServer({ args: ['--heartbeat-interval-ms', '300'] });
    admin = new DroverClient(server.clientOptions);
    startAgent(server, 'real', { role: 'real' });
    await waitFor(async () => (await admin.fleet.get('real').catch(() => undefined))?.state === 'connected', 20_000, () => 'real to connect');
  });
  afterAll(() => admin?.close());

  it('impersonation - a Hello naming another agent is refused; without a certificate nothing connects; the real agent keeps its link and its steps', async () => {
    const effects = join(dir, 'imp-effects');
    const file = workflow('imp.yaml', `name: imp\nsteps:\n  - { id: s, target: { labels: { role: real } }, run: 'sleep 1; echo done >> "${effects}"' }\n`);
    const run = await admin.runs.launch(file);
    const before = (await admin.fleet.get('real')).connectedSince;
    const imp = await rawAgent(server, 'mallory');
    const { inbox, send, errors } = imp.connect();
    send({ seq: 0, hello: { name: 'real', labels: { role: 'real' }, bootId: 'evil' } });
    await waitFor(() => inbox.find((m) => m.reject), 10_000, () => 'a reject');
    expect(inbox.find((m) => m.reject)!.reject!.message).toMatch(/this agent's credential names "mallory" but its Hello says "real"/);
    expect(inbox.some((m) => m.assign)).toBe(false);
    imp.close();

    const anon = new (droverV1().AgentService)(server.address, grpc.credentials.createSsl(readFileSync(server.creds.caFile)));
    const err = await new Promise<grpc.ServiceError>((r) => {
      const c = anon.Connect();
      c.on('error', r);
      c.on('data', () => undefined);
      c.write({ seq: 0, hello: { name: 'real' } });
    });
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
    anon.close();
    expect((await run.wait()).status).toBe('succeeded');
    expect(readFileSync(effects, 'utf8')).toBe('done\n');
    const now = await admin.fleet.get('real');
    expect(now.state).toBe('connected');
    expect(now.connectedSince).toEqual(before);
    expect(errors.length).toBeLessThanOrEqual(1);
  });

  it('sequence poisoning - a seq far beyond the applied one is refused with Reject SEQ_GAP, never acked, and later messages still apply', async () => {
    const raw = await rawAgent(server, 'seqy');
    let link = raw.connect();
    link.send({ seq: 0, hello: { name: 'seqy', labels: { role: 'seqy' }, bootId: 'b1', instanceId: 'i1' } });
    await waitFor(() => link.inbox.find((m) => m.welcome), 10_000, () => 'welcome');
    const file = workflow('seqy.yaml', `name: seqy\nsteps:\n  - { id: m, target: { agent: seqy }, run: 'true' }\n`);
    const run = await admin.runs.launch(file);
    const assign = await waitFor(() => link.inbox.find((m) => m.assign)?.assign ?? undefined, 10_000, () => 'assign');
    const base = { runId: assign.runId, stepId: 'm', attemptId: `${assign.runId}/m/1/seqy`, attempt: 1 };
    link.send({ seq: 1e15, stepEvent: { ...base, phase: 'STEP_PHASE_SUCCEEDED', endedAtMs: Date.now() } });
    const reject = await waitFor(() => link.inbox.find((m) => m.reject)?.reject ?? undefined, 10_000, () => 'the refusal');
    expect(reject).toMatchObject({ code: 'SEQ_GAP', rule: 'seq-gap', seq: 1e15, message: expect.stringMatching(/^message 1000000000000000 refused: seq 1000000000000000 after 0: seqs grow by one/) });
    expect(server.output()).toMatch(/it breaks rule seq-gap of docs\/protocol\.md; closing the link/);
    expect(link.inbox.some((m) => m.ack)).toBe(false);
    expect((await admin.runs.get(run.id)).status).toBe('running');
    link = raw.connect();
    link.send({ seq: 0, hello: { name: 'seqy', labels: { role: 'seqy' }, bootId: 'b1', instanceId: 'i1' } });
    const welcome = await waitFor(() => link.inbox.find((m) => m.welcome)?.welcome ?? undefined, 10_000, () => 'welcome again');
    expect(welcome.appliedSeq).toBe(0);
    link.send({ seq: 1, stepEvent: { ...base, phase: 'STEP_PHASE_STARTED', startedAtMs: Date.now() } });
    link.send({ seq: 2, stepEvent: { ...base, phase: 'STEP_PHASE_SUCCEEDED', endedAtMs: Date.now() } });
    await waitFor(() => link.inbox.some((m) => m.ack?.seq === 2), 10_000, () => 'ack of seq 2');
    expect((await run.wait()).status).toBe('succeeded');
    link.call.cancel();
    raw.close();
  });

  it('duplicate identity - a second process with the same certificate takes over once; the first stops instead of flapping', async () => {
    const first = startAgent(server, 'twin', { role: 'twin' });
    first.expectExit();
    await waitFor(async () => (await admin.fleet.get('twin').catch(() => undefined))?.state === 'connected', 20_000, () => 'twin to connect');
    const copy = tempDir('drover-twin-copy-');
    // The same identity in another state dir (the directory's LOCK stays with the first).
    cpSync(first.stateDir, copy, { recursive: true, filter: (src) => !src.endsWith('/LOCK') });
    const second = agentProcess(server, 'twin', copy);
    expect(await new Promise((r) => first.child.once('exit', r))).toBe(1);
    expect(first.output()).toMatch(/REPLACED.*another process with this agent's identity \("twin"\) connected/);
    const since = (await waitFor(async () => {
      const a = await admin.fleet.get('twin');
      return a.state === 'connected' ? a : undefined;
    }, 10_000, () => 'the second twin')).connectedSince;
    await new Promise((r) => setTimeout(r, 1500));
    expect((await admin.fleet.get('twin')).connectedSince).toEqual(since);
    second.child.kill('SIGKILL');
  });
});

describe('security - revocation and certificate lifetime', () => {
  it('revocation - mid-step the link closes within a second, reconnects are refused, and the step follows onAgentLost', async () => {
    const server = await startServer();
    const admin = new DroverClient(server.clientOptions);
    const victim = startAgent(server, 'victim', { role: 'victim' });
    victim.expectExit();
    await waitFor(async () => (await admin.fleet.get('victim').catch(() => undefined))?.state === 'connected', 20_000, () => 'victim to connect');
    const file = workflow('revoke.yaml', `name: revoke\nsteps:\n  - { id: long, target: { labels: { role: victim } }, run: 'sleep 20' }\n`);
    const run = await admin.runs.launch(file);
    await waitFor(async () => (await admin.runs.get(run.id)).steps.find((s) => s.id === 'long')?.status === 'running', 10_000, () => 'the step to run');
    const t0 = Date.now();
    const res = await cli(['agent', 'revoke', 'victim'], server.env);
    expect(res.stdout).toBe('agent victim revoked: its link is closed and its certificates are refused\n');
    await waitFor(async () => (await admin.fleet.get('victim')).state !== 'connected', 5_000, () => 'the link to close');
    expect(Date.now() - t0).toBeLessThan(1500);
    const ended = await run.wait();
    expect(ended.status).toBe('failed');
    expect(ended.steps.find((s) => s.id === 'long')!.message).toMatch(/agent victim was lost \(revoked by an admin\)/);
    // The agent learns it is refused and stops instead of retrying forever.
    expect(await new Promise((r) => (victim.child.exitCode !== null ? r(victim.child.exitCode) : victim.child.once('exit', r)))).toBe(1);
    expect(victim.output()).toMatch(/revoked/);
    const back = agentProcess(server, 'victim', victim.stateDir);
    expect(await back.exited).toBe(1);
    expect(back.output()).toMatch(/refused this agent's certificate: .*was revoked at/);
    expect((await admin.access.listAgentCredentials()).find((c) => c.name === 'victim')!.state).toBe('revoked');
    admin.close();
  });

  it('renewal - an agent renews its certificate at two thirds of its life and stays connected; one that does not renew is cut off at expiry with a clear log line', async () => {
    const server = await startServer({ args: ['--agent-cert-ttl', '6s'] });
    const admin = new DroverClient(server.clientOptions);
    const a = startAgent(server, 'renewer', {});
    await waitFor(async () => (await admin.fleet.get('renewer').catch(() => undefined))?.state === 'connected', 20_000, () => 'renewer to connect');
    await waitFor(async () => (await admin.access.listAgentCredentials()).filter((c) => c.name === 'renewer').length >= 3, 20_000, () => 'two renewals');
    expect(a.output()).toMatch(/certificate renewed; reconnecting with it/);
    await waitFor(async () => (await admin.fleet.get('renewer')).state === 'connected', 5_000, () => 'renewer connected');

    const lazy = await rawAgent(server, 'lazy');
    const link = lazy.connect();
    link.send({ seq: 0, hello: { name: 'lazy', labels: {}, bootId: 'l' } });
    await waitFor(() => link.inbox.find((m) => m.welcome), 10_000, () => 'welcome');
    const reject = await waitFor(() => link.inbox.find((m) => m.reject)?.reject ?? undefined, 15_000, () => 'the expiry reject');
    expect(reject.code).toBe('CERTIFICATE_EXPIRED');
    expect(server.output()).toMatch(/the certificate of agent lazy expired at .* and was not renewed; closing its link/);
    lazy.close();
    a.child.kill('SIGKILL');
    admin.close();
  });
});

describe('security - forged messages on an open NATS bus', () => {
  it('nats - an unsigned Assign published on the agent\'s down subject with its session is refused by the agent and runs nothing', async () => {
    const nats = await startNatsServer();
    const server = await startServer({ args: ['--nats', nats.url, '--heartbeat-interval-ms', '300'] });
    const admin = new DroverClient(server.clientOptions);
    const agent = startNatsAgent(server, nats.url, 'bus-1', { role: 'bus' });
    await waitFor(async () => (await admin.fleet.get('bus-1').catch(() => undefined))?.state === 'connected', 20_000, () => 'bus-1 to connect');
    // The attacker reads the bus to learn the session and the next sequence number.
    const nc = await natsConnect({ servers: nats.url });
    let sid = '';
    let seq = 0;
    let seen = 0;
    nc.subscribe(downSubject('bus-1'), {
      callback: (_e, m) => {
        seen++;
        sid = m.headers?.get(NATS_HEADER.session) || sid;
        seq = Math.max(seq, Number(m.headers?.get(NATS_HEADER.seq) ?? 0));
      },
    });
    await nc.flush();
    await admin.fleet.drain('bus-1', true);
    await admin.fleet.drain('bus-1', false);
    // Both Drain messages seen: the forged one must come next in the session.
    await waitFor(() => seen >= 2, 10_000, () => 'the down messages to spy on');
    await new Promise((r) => setTimeout(r, 200));
    const evil = join(dir, 'pwned');
    const forged = encodeMessage('ServerMessage', {
      assign: {
        runId: 'r-evil',
        workflow: 'evil',
        steps: [{ id: 'x', kind: 'run', run: `touch ${evil}`, agent: 'bus-1' }],
      },
    });
    const h = natsHeaders();
    h.set(NATS_HEADER.session, sid);
    h.set(NATS_HEADER.seq, String(seq + 1));
    nc.publish(downSubject('bus-1'), forged, { headers: h });
    await nc.flush();
    await waitFor(() => /control message refused, nothing done: an unsigned assign/.test(agent.output()), 10_000, () => `the agent to refuse it:\n${agent.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 500));
    expect(existsSync(evil)).toBe(false);
    await waitFor(async () => ((await admin.fleet.get('bus-1')).heartbeat?.rejectedControlMessages ?? 0) >= 1, 10_000, () => 'the refusal in a heartbeat');
    await nc.close();
    admin.close();
    mkdirSync(dir, { recursive: true });
  });
});

describe('security - NATS with the generated configuration', () => {
  it('nats - each agent may use only its own subjects: another agent\'s credential can neither read its down subject nor publish on its up subject, and its own cannot publish on .down', async () => {
    const dataDir = tempDir('drover-nats-auth-');
    const conf = spawnSync(process.execPath, [ENTRY.server, 'nats-config', '--data-dir', dataDir], { encoding: 'utf8' });
    expect(conf.status, conf.stderr).toBe(0);
    expect(conf.stdout).toMatch(/^operator: eyJ/m);
    expect(conf.stdout).toMatch(/^resolver: MEMORY$/m);
    const nats = await startNatsServer({ config: conf.stdout });
    const server = await startServer({ dataDir, args: ['--nats', nats.url, '--heartbeat-interval-ms', '300'] });
    const admin = new DroverClient(server.clientOptions);
    const a = startNatsAgent(server, nats.url, 'nats-a', { role: 'a' });
    const b = startNatsAgent(server, nats.url, 'nats-b', { role: 'b' });
    b.expectExit();
    await waitFor(async () => (await admin.fleet.list()).filter((x) => x.state === 'connected').length === 2, 20_000, () => 'both NATS agents to connect with their own credentials');
    const effects = join(dir, 'nats-auth-effects');
    const file = workflow('nats-auth.yaml', `name: na\nsteps:\n  - { id: one, target: { labels: { role: a } }, run: 'echo a >> "${effects}"' }\n  - { id: two, needs: [one], target: { labels: { role: b } }, run: 'echo b >> "${effects}"' }\n`);
    expect((await (await admin.runs.launch(file)).wait()).status).toBe('succeeded');
    expect(readFileSync(effects, 'utf8')).toBe('a\nb\n');

    // Without credentials nothing connects at all.
    await expect(natsConnect({ servers: nats.url, maxReconnectAttempts: 0 })).rejects.toThrow(/Authorization|authentication|auth/i);

    // With nats-a's credentials.
    const idA = join(a.stateDir, 'identity');
    expect(statSync(join(idA, 'nats.nk')).mode & 0o777).toBe(0o600);
    const nc = await natsConnect({
      servers: nats.url,
      authenticator: jwtAuthenticator(readFileSync(join(idA, 'nats.jwt'), 'utf8').trim(), new TextEncoder().encode(readFileSync(join(idA, 'nats.nk'), 'utf8').trim())),
    });
    const violations: string[] = [];
    void (async () => {
      for await (const s of nc.status()) if (s.type === 'error') violations.push(String(s.error?.message ?? s.error));
    })();
    const subErr = await new Promise<Error | null>((res) => {
      nc.subscribe(downSubject('nats-b'), { callback: (err) => res(err) });
      setTimeout(() => res(null), 3000);
    });
    expect(String(subErr)).toMatch(/permissions violation/i);
    nc.publish(upSubject('nats-b'), encodeMessage('AgentMessage', { seq: 0, hello: { name: 'nats-b' } }));
    nc.publish(downSubject('nats-a'), encodeMessage('ServerMessage', { assign: { runId: 'r-evil', workflow: 'e', steps: [{ id: 'x', kind: 'run', run: `touch ${effects}.pwned`, agent: 'nats-a' }] } }));
    await nc.flush().catch(() => undefined);
    await waitFor(() => violations.filter((v) => /permissions violation/i.test(v)).length >= 2, 10_000, () => `two publish violations (${violations.join('; ')})`);
    expect(violations.some((v) => /publish to "drover\.v1\.agent\.nats-b\.up"/i.test(v))).toBe(true);
    expect(violations.some((v) => /publish to "drover\.v1\.agent\.nats-a\.down"/i.test(v))).toBe(true);
    await nc.close();
    expect(existsSync(`${effects}.pwned`)).toBe(false);
    expect((await admin.fleet.list()).every((x) => x.state === 'connected')).toBe(true);

    // A revoked NATS agent is cut off and refused when it says Hello again.
    await admin.access.revokeAgent('nats-b');
    expect(await new Promise((r) => (b.child.exitCode !== null ? r(b.child.exitCode) : b.child.once('exit', r)))).toBe(1);
    expect(b.output()).toMatch(/REVOKED/);
    admin.close();
  });
});
