/**
 * The fuzz suite (docs/security.md, "Limits"): thousands of hostile and
 * random messages of every API request type and every agent-link message
 * type against a real control plane. After each batch the server must answer
 * a health call within HEALTH_MS; at the end the fleet, runs, registry and
 * devices must be as they were. Bounded in count (FUZZ_PER_TYPE, default
 * 1000) and in time (the test's timeout).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DESCRIPTOR } from '../../proto/gen/descriptor.js';
import { requestTypes } from '../../proto/limits.js';
import { DroverClient } from '../../sdk/index.js';
import { cli, startAgent, startServer, tempDir, waitFor, type ServerProc } from '../helpers/cluster.js';
import { encode, hostileMessage, noise, rng } from '../helpers/fuzz.js';
import { rawAgent } from '../helpers/raw-agent.js';
import { writeFileSync } from 'node:fs';

const PER_TYPE = Number(process.env.FUZZ_PER_TYPE ?? 1000);
/** Calls in flight at once. */
const CONCURRENCY = 64;
/** A health call after each batch must answer within this. */
const HEALTH_MS = 2000;


function methodKinds(): Map<string, { responseStream: boolean; requestStream: boolean }> {
  const v1 = (DESCRIPTOR as unknown as { nested: { drover: { nested: { v1: { nested: Record<string, { methods?: Record<string, { responseStream?: boolean; requestStream?: boolean }> }> } } } } }).nested.drover.nested.v1.nested;
  const out = new Map<string, { responseStream: boolean; requestStream: boolean }>();
  for (const [svc, def] of Object.entries(v1)) for (const [m, d] of Object.entries(def.methods ?? {})) out.set(`/drover.v1.${svc}/${m}`, { responseStream: !!d.responseStream, requestStream: !!d.requestStream });
  return out;
}

/** What must not change: every agent's name, labels and facts; every run and step's status and outputs; workflows; devices. */
async function snapshot(admin: DroverClient) {
  const agents = (await admin.fleet.list()).map((a) => ({ name: a.name, labels: a.labels, facts: a.facts }));
  const runs = (await admin.runs.list({ limit: 1000 })).map((r) => ({ id: r.id, status: r.status, steps: r.steps.map((s) => [s.id, s.status, s.outputs]) }));
  const workflows = await admin.workflows.list();
  const devices = await admin.devices.list();
  return { agents, runs, workflows, devices };
}

describe('fuzz - hostile input changes nothing', () => {
  let server: ServerProc;
  let admin: DroverClient;
  let before: Awaited<ReturnType<typeof snapshot>>;
  const dir = tempDir('drover-fuzz-');
  beforeAll(async () => {
    server = await startServer();
    admin = new DroverClient(server.clientOptions);
    const agent = startAgent(server, 'steady', { role: 'steady' });
    await waitFor(async () => (await admin.fleet.list()).some((a) => a.name === 'steady' && a.state === 'connected'), 20_000, () => agent.output());
    writeFileSync(join(dir, 'wf.yaml'), 'name: steady\nsteps:\n  - id: a\n    run: echo out=1 >> "$DROVER_OUTPUT"\n');
    await admin.workflows.apply(join(dir, 'wf.yaml'));
    expect((await (await admin.runs.launch('steady')).wait()).status).toBe('succeeded');
    await admin.devices.add({ name: 'sw-1', host: '10.0.0.2', user: 'admin', credential: 'lab' });
    before = await snapshot(admin);
  });
  afterAll(() => admin?.close());

  const health = async (what: string) => {
    const t0 = Date.now();
    await admin.fleet.list();
    expect(Date.now() - t0, `health call after ${what}`).toBeLessThan(HEALTH_MS);
  };

  it('fuzz - every API request type: hostile requests are refused with INVALID_REQUEST naming the field; random bytes are survived', async () => {
    const r = rng(0xd20e);
    const kinds = methodKinds();
    const types = requestTypes();
    const client = new grpc.Client(server.address, grpc.credentials.createSsl(readFileSync(server.creds.caFile)));
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${server.creds.token}`);
    const id = (x: Buffer) => x;
    const send = (path: string, body: Buffer, waitMs = 10_000): Promise<{ code: grpc.status; details: string }> =>
      new Promise((resolve) => {
        const deadline = Date.now() + waitMs;
        const k = kinds.get(path)!;
        if (k.responseStream) {
          const c = client.makeServerStreamRequest(path, id, id, body, md, { deadline });
          c.on('data', () => c.cancel());
          c.on('error', (e: grpc.ServiceError) => resolve({ code: e.code, details: e.details }));
          c.on('status', (s: grpc.StatusObject) => resolve({ code: s.code, details: s.details }));
          return;
        }
        client.makeUnaryRequest(path, id, id, body, md, { deadline }, (err) => resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '' }));
      });
    let hostile = 0;
    let random = 0;
    for (const [path, typeName] of types) {
      if (kinds.get(path)!.requestStream) continue; // the agent link: below
      // Enrollment needs no token, so its garbage counts as failed guesses and would slow every answer to this address.
      const hostileOnly = path.endsWith('/Enroll');
      const jobs: (() => Promise<void>)[] = [];
      for (let i = 0; i < PER_TYPE; i++) {
        const msg = i % 2 === 0 || hostileOnly ? hostileMessage(typeName, r) : undefined;
        if (msg) {
          hostile++;
          const body = encode(typeName, msg);
          jobs.push(async () => {
            const res = await send(path, body);
            expect(res.code, `${path} ${JSON.stringify(msg).slice(0, 300)}`).toBe(grpc.status.INVALID_ARGUMENT);
            expect(res.details).toMatch(/refused: \S+ (is|has|must)/);
          });
        } else {
          random++;
          const body = noise(r);
          jobs.push(async () => {
            const t = Date.now();
            // Noise that decodes to a valid watch with nothing to send yet (WatchRuns of a filter no run matches) streams on until its deadline: a short one (nothing is asserted of noise but that the server survives it).
            const res = await send(path, body, kinds.get(path)!.responseStream ? 300 : 10_000);
            if (process.env.FUZZ_TIMES && Date.now() - t > 3000) console.log('SLOW', path, res, body.toString('hex'));
          });
        }
      }
      const t0 = Date.now();
      for (let i = 0; i < jobs.length; i += CONCURRENCY) await Promise.all(jobs.slice(i, i + CONCURRENCY).map((j) => j()));
      if (process.env.FUZZ_TIMES) console.log(path, Date.now() - t0);
      await health(path);
    }
    client.close();
    // A watch of an unknown run used to hang until the caller's deadline: it is answered at once.
    const res = await cli(['logs', 'r-000000-000000-00000000'], server.env, 5000);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/no run with id "r-000000-000000-00000000"/);
    expect(hostile).toBeGreaterThan(10 * PER_TYPE);
    expect(random).toBeGreaterThan(10 * PER_TYPE);
    expect(await snapshot(admin)).toEqual(before);
  }, 120_000); // 34 request types x FUZZ_PER_TYPE: about 50 s on 2 busy cores

  it('fuzz - every agent-link message type from an enrolled agent: a hostile Hello is refused naming the field, the rest is dropped; nothing of it is stored', async () => {
    const r = rng(0xa6e7);
    const agent = await rawAgent(server, 'fuzzer');
    const hello = { name: 'fuzzer', labels: { role: 'fuzz' }, bootId: 'b1', instanceId: 'i1' };
    let link = agent.connect();
    link.send({ seq: 0, hello });
    await waitFor(() => link.inbox.find((m) => m.welcome), 10_000, () => 'welcome');
    const baseline = await snapshot(admin);
    // Refused Hellos, each on a link of its own.
    for (let i = 0; i < 200; i++) {
      const l = agent.connect();
      const h = { ...hostileMessage('Hello', r, ['name']), name: 'fuzzer' };
      l.call.write({ seq: 0, hello: h } as never);
      const reject = await waitFor(() => l.inbox.find((m) => m.reject) ?? (l.errors.length ? { errored: true } : undefined), 10_000, () => 'a reject');
      if ('reject' in reject) expect(reject.reject!.message).toMatch(/^Hello refused: hello\.\S+ (is|has|must)/);
      l.call.end();
    }
    await health('hostile Hellos');
    // Everything else on the session, hostile bodies and hostile seqs.
    const bodies: [string, string][] = [['heartbeat', 'Heartbeat'], ['stepEvent', 'StepEvent'], ['log', 'LogChunk'], ['renew', 'RenewRequest'], ['hello', 'Hello']];
    let sent = 0;
    let seq = 1;
    for (const [body, typeName] of bodies) {
      for (let i = 0; i < PER_TYPE; i++) {
        const msg = hostileMessage(typeName, r)!;
        if (body === 'stepEvent' || body === 'log') msg.runId = before.runs[0].id;
        link.send({ seq: body === 'heartbeat' || body === 'renew' ? 0 : seq++, [body]: msg } as never);
        sent++;
        if (i % 200 === 199) {
          await health(`${body} batch`);
          if (link.errors.length || link.inbox.some((m) => m.reject)) {
            link = agent.connect();
            link.send({ seq: 0, hello });
            await waitFor(() => link.inbox.find((m) => m.welcome), 10_000, () => 'welcome after a closed link');
          }
        }
      }
      await health(body);
    }
    // Hostile seqs on ordinary bodies.
    for (const s of [-1, 2 ** 53, Number.MAX_SAFE_INTEGER, 1e6]) link.send({ seq: s, log: { runId: 'x', stepId: 'y', data: Buffer.from('z') } } as never);
    await health('hostile seqs');
    agent.close();
    expect(sent).toBeGreaterThanOrEqual(5 * PER_TYPE);
    const after = await snapshot(admin);
    expect(after).toEqual(baseline);
    expect(after.agents.map((a) => a.name).sort()).toEqual(['fuzzer', 'steady']);
    // The server logged about the fuzzer at a bounded rate.
    const res = await cli(['fleet', '-o', 'json'], server.env);
    expect(res.code, res.stderr).toBe(0);
    const lines = server.output().split('\n').filter((l) => l.includes('"fuzzer"'));
    expect(lines.length, 'log lines about the fuzzing agent').toBeLessThan(200);
  });
});
