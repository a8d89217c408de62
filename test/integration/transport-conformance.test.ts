/**
 * One suite, run over both agent links (gRPC and NATS), with real
 * control-plane, agent and nats-server processes: every behaviour of the
 * agent link end to end (DESIGN.md §5; docs/protocol.md, docs/nats.md).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { connect as natsConnect, headers as natsHeaders } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeMessage, droverV1, encodeMessage, type ServerMessageOut } from '../../proto/index.js';
import { downSubject, MAX_AGENT_MESSAGE_BYTES, NATS_HEADER, upSubject } from '../../proto/nats.js';
import { DroverClient, type Agent, type Run } from '../../sdk/index.js';
import { startAgent, startNatsAgent, startServer, tempDir, workflowFile, waitFor, type AgentProc, type ServerProc, isAlive } from '../helpers/cluster.js';
import { startNatsServer, type NatsServer } from '../helpers/nats.js';
import { dashboardUrl, sample, scrape } from '../helpers/http-port.js';
import { rawAgent } from '../helpers/raw-agent.js';

type Transport = 'grpc' | 'nats';

/** Short heartbeats keep the suite quick (and the NATS idle timeout at 3 × 500 ms). */
const HEARTBEAT_MS = 500;
const dir = tempDir('drover-conformance-');

const workflow = (name: string, text: string) => workflowFile(dir, name, text);

async function finalRun(client: DroverClient, id: string, timeoutMs = 30_000): Promise<Run> {
  return waitFor(
    async () => {
      const run = await client.runs.get(id).catch(() => undefined);
      return run && ['succeeded', 'failed', 'cancelled'].includes(run.status) ? run : undefined;
    },
    timeoutMs,
    () => `run ${id} to finish`,
  );
}

async function logTexts(client: DroverClient, runId: string, stepId: string): Promise<string[]> {
  const out: string[] = [];
  for await (const l of client.logs(runId, stepId)) out.push(l.text);
  return out;
}


describe.each<Transport>(['grpc', 'nats'])('transport conformance - %s', (transport) => {
  let nats: NatsServer | undefined;
  let server: ServerProc;
  let client: DroverClient;
  let agents: AgentProc[] = [];
  const A = `${transport}-a`;
  const B = `${transport}-b`;
  const serverArgs = () => ['--heartbeat-interval-ms', String(HEARTBEAT_MS), '--http', '127.0.0.1:0', ...(nats ? ['--nats', nats.url] : [])];
  const agent = (name: string, role: string) =>
    transport === 'nats' ? startNatsAgent(server, nats!.url, name, { role }) : startAgent(server, name, { role });

  beforeAll(async () => {
    // 8 MiB max_payload so a message over the control plane's own 4 MiB limit reaches it.
    if (transport === 'nats') nats = await startNatsServer({ maxPayload: 8 * 1024 * 1024 });
    server = await startServer({ args: serverArgs() });
    agents = [agent(A, 'a'), agent(B, 'b')];
    client = new DroverClient(server.clientOptions);
    await waitFor(async () => (await client.fleet.list()).filter((a) => a.state === 'connected').length === 2, 20_000, () => 'two agents to connect');
  });

  afterAll(async () => {
    client?.close();
    await Promise.all([...agents.map((a) => a.stop()), server?.stop()]);
    await nats?.stop();
  });

  it(`${transport} link - Hello registers both agents with labels and host facts, over this transport`, async () => {
    const fleet = await client.fleet.list();
    expect(fleet.map((a) => [a.name, a.state, a.transport, a.labels])).toEqual([
      [A, 'connected', transport, { role: 'a' }],
      [B, 'connected', transport, { role: 'b' }],
    ]);
    for (const a of fleet) {
      expect(a.facts?.cpuCount).toBeGreaterThan(0);
      expect(a.facts?.memoryBytes).toBeGreaterThan(0);
      expect(a.facts?.hostname).not.toBe('');
      expect(a.facts?.agentVersion).toMatch(/^\d+\.\d+\.\d+/);
      expect(a.peer).not.toBe('');
    }
    if (transport === 'nats') expect(fleet[0].peer).toContain(upSubject(A));
  });

  it(`${transport} link - heartbeats bring CPU, memory, disk and load figures`, async () => {
    const fleet = await waitFor(
      async () => {
        const list = await client.fleet.list();
        return list.every((a) => (a.heartbeat?.memoryTotalBytes ?? 0) > 0) && list;
      },
      10_000,
      () => 'a heartbeat from each agent',
    );
    for (const a of fleet as Agent[]) {
      expect(a.heartbeat!.memoryPercent).toBeGreaterThan(0);
      expect(a.heartbeat!.diskPercent).toBeGreaterThan(0);
      expect(a.heartbeat!.load).toHaveLength(3);
      expect(a.heartbeat!.at).toBeGreaterThan(Date.now() - 60_000);
    }
  });

  it(`${transport} link - Assign and Release: a 2-step workflow on two agents carries an output across`, async () => {
    const file = workflow(
      `${transport}-across.yaml`,
      `name: across
steps:
  - id: make
    target: { labels: { role: a } }
    run: echo "token=t-$DROVER_AGENT" >> "$DROVER_OUTPUT"
  - id: use
    needs: [make]
    target: { labels: { role: b } }
    run: echo "got $TOKEN on $DROVER_AGENT"
    env: { TOKEN: "\${{ steps.make.outputs.token }}" }
`,
    );
    const run = await finalRun(client, (await client.runs.launch(file)).id);
    expect(run.status).toBe('succeeded');
    expect(Object.fromEntries(run.steps.map((s) => [s.id, [s.agent, s.status]]))).toEqual({ make: [A, 'succeeded'], use: [B, 'succeeded'] });
    expect(run.steps.find((s) => s.id === 'make')!.outputs).toEqual({ token: `t-${A}` });
    expect(await logTexts(client, run.id, 'use')).toEqual([`got t-${A} on ${B}`]);
  });

  it(`${transport} link - the real agent keeps every protocol rule (a retry, a skip), and forgets a finished run's attempts on its RunFinished`, async () => {
    const file = workflow(
      `${transport}-rules.yaml`,
      `name: rules
steps:
  - { id: one, target: { labels: { role: a } }, run: 'true' }
  - { id: two, needs: [one], target: { labels: { role: a } }, run: 'exit 3', retry: { attempts: 2, initial: 10ms } }
  - { id: three, needs: [two], target: { labels: { role: a } }, run: 'true' }
`,
    );
    const run = await finalRun(client, (await client.runs.launch(file)).id);
    expect(run.status).toBe('failed');
    expect(run.steps.map((s) => [s.id, s.status, s.attempts.map((a) => `${a.id}:${a.status}`)])).toEqual([
      ['one', 'succeeded', [`${run.id}/one/1/${A}:succeeded`]],
      ['two', 'failed', [`${run.id}/two/1/${A}:failed`, `${run.id}/two/2/${A}:failed`]],
      ['three', 'skipped', []],
    ]);
    // RunFinished came (signed, over this transport): the agent's ledger forgot the run.
    const ledger = join(agents[0].stateDir, 'ledger.ndjson');
    await waitFor(() => readFileSync(ledger, 'utf8').includes(`{"f":"${run.id}"}`), 10_000, () => 'the run forgotten in the ledger');
    const m = await scrape(await dashboardUrl(server), server.creds.token, server.creds.caFile);
    expect(m.families.find((f) => f.name === 'drover_agent_protocol_violations_total')?.metrics ?? []).toEqual([]);
    expect(sample(m, 'drover_runs_total', { workflow: 'rules', status: 'failed' })).toBe(1);
  });

  it(`${transport} link - Cancel kills a running step's process group`, async () => {
    const marker = join(dir, `${transport}-sleep.pid`);
    const file = workflow(
      `${transport}-sleep.yaml`,
      `name: sleeper
params: { marker: {} }
steps:
  - id: nap
    target: { labels: { role: b } }
    run: sleep 300 & echo $! > "$MARKER"; wait
    env: { MARKER: "\${{ params.marker }}" }
`,
    );
    const handle = await client.runs.launch(file, { marker });
    const pid = await waitFor(() => existsSync(marker) && Number(readFileSync(marker, 'utf8')), 15_000, () => 'the sleep to start');
    await client.runs.cancel(handle.id, 'conformance');
    const run = await finalRun(client, handle.id);
    expect(run.status).toBe('cancelled');
    expect(run.steps[0].status).toBe('cancelled');
    await waitFor(() => !isAlive(pid), 10_000, () => `sleep (pid ${pid}) to be killed`);
  });

  it(`${transport} link - 3000 log lines printed in a burst arrive complete and in order`, async () => {
    const file = workflow(
      `${transport}-burst.yaml`,
      `name: burst
steps:
  - { id: talk, target: { labels: { role: a } }, run: "seq 1 3000 | sed 's/^/line /'; echo to-stderr >&2" }
`,
    );
    const run = await finalRun(client, (await client.runs.launch(file)).id);
    expect(run.status).toBe('succeeded');
    const lines = await logTexts(client, run.id, 'talk');
    expect(lines.filter((l) => l.startsWith('line '))).toEqual(Array.from({ length: 3000 }, (_, i) => `line ${i + 1}`));
    expect(lines).toContain('to-stderr');
  });

  it(`${transport} link - a single 3 MB line (no newline until the end) reaches the server whole, in bounded chunks`, async () => {
    const file = workflow(
      `${transport}-big.yaml`,
      `name: big-line
steps:
  - { id: shout, target: { labels: { role: b } }, run: "head -c 3000000 /dev/zero | tr '\\\\0' x; echo" }
`,
    );
    const run = await finalRun(client, (await client.runs.launch(file)).id);
    expect(run.status).toBe('succeeded');
    const records = await logTexts(client, run.id, 'shout');
    const text = records.join('');
    expect(text.length).toBe(3_000_000);
    expect(/^x+$/.test(text)).toBe(true);
    // The agent cut the line (agent/executor/lines.ts MAX_PARTIAL_BYTES); no record is near a message limit.
    expect(records.length).toBeGreaterThan(1);
    expect(Math.max(...records.map((r) => r.length))).toBeLessThanOrEqual(128 * 1024);
    expect((await client.fleet.list()).every((a) => a.state === 'connected')).toBe(true);
  });

  it(`${transport} link - a raw message over the size limit is refused with an error and changes nothing`, async () => {
    const huge = 'x'.repeat(MAX_AGENT_MESSAGE_BYTES + 1024);
    const hello = { seq: 0, hello: { name: 'raw-big', labels: { blob: huge }, bootId: 'raw' } };
    if (transport === 'grpc') {
      const raw = await rawAgent(server, 'raw-big');
      const { call } = raw.connect();
      const err = await new Promise<grpc.ServiceError>((res) => {
        call.on('error', res);
        call.write(hello);
      });
      expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(err.details).toMatch(/larger than max/i);
      raw.close();
    } else {
      const nc = await natsConnect({ servers: nats!.url });
      const h = natsHeaders();
      h.set(NATS_HEADER.session, 'raw-session');
      h.set(NATS_HEADER.seq, '1');
      nc.publish(upSubject('raw-big'), encodeMessage('AgentMessage', hello), { headers: h });
      await nc.flush();
      await waitFor(() => /agent message dropped: \d+ bytes is over the 4194304-byte limit/.test(server.output()), 10_000, () => 'the drop to be logged');
      expect(server.output()).toMatch(/"agent":"raw-big"/);
      await nc.close();
    }
    const fleet = await client.fleet.list();
    expect(fleet.map((a) => a.name)).toEqual([A, B]);
    expect(fleet.every((a) => a.state === 'connected')).toBe(true);
    expect(server.child.exitCode).toBeNull();
  });

  it(`${transport} link - control plane restarted while a step logs: every line arrives exactly once`, async () => {
    const file = workflow(
      `${transport}-restart.yaml`,
      `name: restart
steps:
  - { id: tick, target: { labels: { role: a } }, run: "for i in $(seq 1 60); do echo tick $i; sleep 0.05; done" }
`,
    );
    const { id } = await client.runs.launch(file);
    await waitFor(async () => (await logTexts(client, id, 'tick')).length >= 5, 15_000, () => 'the step to start logging');
    const { address, dataDir } = server;
    client.close();
    const downAt = Date.now();
    await server.stop('SIGTERM');
    await new Promise((r) => setTimeout(r, 1000)); // the step keeps logging into the agent's outbox
    const upAt = Date.now();
    server = await startServer({ dataDir, listen: address, args: serverArgs() });
    client = new DroverClient(server.clientOptions);
    const run = await finalRun(client, id);
    expect(run.status).toBe('succeeded');
    const lines: { text: string; at: number }[] = [];
    for await (const l of client.logs(id, 'tick')) lines.push({ text: l.text, at: l.at });
    expect(lines.map((l) => l.text)).toEqual(Array.from({ length: 60 }, (_, i) => `tick ${i + 1}`));
    // Some lines were printed while the control plane was down: they came by replay.
    expect(lines.some((l) => l.at >= downAt && l.at < upAt)).toBe(true);
    await waitFor(async () => (await client.fleet.list()).every((a) => a.state === 'connected' && a.transport === transport), 15_000, () => 'both agents back');
  });

  if (transport === 'nats') {
    it('nats link - a Hello for another agent on this agent\'s subject is rejected with BAD_NAME', async () => {
      const nc = await natsConnect({ servers: nats!.url });
      const replies: ServerMessageOut[] = [];
      nc.subscribe(downSubject('intruder'), {
        callback: (_e, m) => {
          if (m.data.length) replies.push(decodeMessage<ServerMessageOut>('ServerMessage', m.data));
        },
      });
      const h = natsHeaders();
      h.set(NATS_HEADER.session, 'intruder-session');
      h.set(NATS_HEADER.seq, '1');
      nc.publish(upSubject('intruder'), encodeMessage('AgentMessage', { seq: 0, hello: { name: A, bootId: 'x' } }), { headers: h });
      await waitFor(() => replies.length > 0, 10_000, () => 'a reply on the intruder\'s down subject');
      expect(replies[0].reject).toMatchObject({ code: 'BAD_NAME' });
      expect(replies[0].reject!.message).toMatch(new RegExp(`Hello names agent "${A}" but came on drover\\.v1\\.agent\\.intruder\\.up`));
      await nc.close();
      const a = (await client.fleet.list()).find((x) => x.name === A)!;
      expect(a.state).toBe('connected');
      expect(a.peer).toContain(upSubject(A));
    });

    it('nats link - nats-server restarted while a step logs: every line arrives exactly once', async () => {
      const file = workflow(
        'nats-bounce.yaml',
        `name: bounce
steps:
  - { id: tick, target: { labels: { role: b } }, run: "for i in $(seq 1 60); do echo tick $i; sleep 0.05; done" }
`,
      );
      const { id } = await client.runs.launch(file);
      await waitFor(async () => (await logTexts(client, id, 'tick')).length >= 5, 15_000, () => 'the step to start logging');
      const { port, storeDir } = nats!;
      await nats!.stop();
      await new Promise((r) => setTimeout(r, 1000));
      nats = await startNatsServer({ port, storeDir, maxPayload: 8 * 1024 * 1024 });
      const run = await finalRun(client, id);
      expect(run.status).toBe('succeeded');
      expect(await logTexts(client, id, 'tick')).toEqual(Array.from({ length: 60 }, (_, i) => `tick ${i + 1}`));
      await waitFor(async () => (await client.fleet.list()).every((a) => a.state === 'connected'), 15_000, () => 'both agents back');
    });

    it('nats link - a silent agent\'s session ends after 3 heartbeat intervals; it rejoins when it speaks again', async () => {
      const frozen = agents.find((a) => a.name === B)!;
      frozen.child.kill('SIGSTOP');
      try {
        const since = Date.now();
        await waitFor(async () => (await client.fleet.get(B)).state === 'disconnected', 10_000, () => `${B} to be marked disconnected`);
        // At least 3 intervals after the last heartbeat, which came at most about one interval before the freeze.
        expect(Date.now() - since).toBeGreaterThanOrEqual(2 * HEARTBEAT_MS - 200);
      } finally {
        frozen.child.kill('SIGCONT');
      }
      await waitFor(async () => (await client.fleet.get(B)).state === 'connected', 10_000, () => `${B} to rejoin`);
      expect(server.output()).toMatch(/"agent":"nats-b","reason":"no message from the agent for 3 heartbeat intervals \(1500 ms\)","msg":"NATS session ended"/);
    });

    it('nats link - a message that is not an AgentMessage is dropped with a logged error', async () => {
      const nc = await natsConnect({ servers: nats!.url });
      const h = natsHeaders();
      h.set(NATS_HEADER.session, 'garbage');
      h.set(NATS_HEADER.seq, '1');
      nc.publish(upSubject('garbage'), new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]), { headers: h });
      await nc.flush();
      await waitFor(() => /agent message dropped: not a drover\.v1\.AgentMessage/.test(server.output()), 10_000, () => 'the drop to be logged');
      await nc.close();
      expect((await client.fleet.list()).map((a) => a.name)).toEqual([A, B]);
    });

    it('nats link - duplicate identity: a Hello of another process under this identity gets the live agent Reject REPLACED, and it stops', async () => {
      const twin = startNatsAgent(server, nats!.url, 'nats-twin', { role: 'twin' });
      twin.expectExit();
      await waitFor(async () => (await client.fleet.list()).find((a) => a.name === 'nats-twin')?.state === 'connected', 20_000, () => 'the twin to connect');
      const nc = await natsConnect({ servers: nats!.url });
      const h = natsHeaders();
      h.set(NATS_HEADER.session, 'twin-other-process');
      h.set(NATS_HEADER.seq, '1');
      nc.publish(upSubject('nats-twin'), encodeMessage('AgentMessage', { seq: 0, hello: { name: 'nats-twin', bootId: 'another-process' } }), { headers: h });
      await nc.flush();
      expect(await new Promise((r) => twin.child.once('exit', r))).toBe(1);
      expect(twin.output()).toMatch(/REPLACED.*another process with this agent's identity \("nats-twin"\) connected/);
      await nc.close();
    });
  }
});

describe('transport conformance - mixed', () => {
  it('mixed links - one run spans a gRPC agent and a NATS agent', async () => {
    const nats = await startNatsServer();
    const server = await startServer({ args: ['--heartbeat-interval-ms', String(HEARTBEAT_MS), '--nats', nats.url] });
    const agents = [startAgent(server, 'mix-grpc', { role: 'first' }), startNatsAgent(server, nats.url, 'mix-nats', { role: 'second' })];
    const client = new DroverClient(server.clientOptions);
    try {
      await waitFor(async () => (await client.fleet.list()).filter((a) => a.state === 'connected').length === 2, 20_000, () => 'both agents');
      const file = workflow(
        'mixed.yaml',
        `name: mixed
steps:
  - { id: one, target: { labels: { role: first } }, run: 'echo "via=$DROVER_AGENT" >> "$DROVER_OUTPUT"' }
  - id: two
    needs: [one]
    target: { labels: { role: second } }
    run: echo "from $VIA"
    env: { VIA: "\${{ steps.one.outputs.via }}" }
  - { id: three, needs: [two], target: { labels: { role: first } }, run: echo back }
`,
      );
      const run = await finalRun(client, (await client.runs.launch(file)).id);
      expect(run.status).toBe('succeeded');
      expect(Object.fromEntries(run.steps.map((s) => [s.id, s.agent]))).toEqual({ one: 'mix-grpc', two: 'mix-nats', three: 'mix-grpc' });
      expect(await logTexts(client, run.id, 'two')).toEqual(['from mix-grpc']);
      const fleet = await client.fleet.list();
      expect(fleet.map((a) => [a.name, a.transport])).toEqual([
        ['mix-grpc', 'grpc'],
        ['mix-nats', 'nats'],
      ]);
    } finally {
      client.close();
      await Promise.all([...agents.map((a) => a.stop()), server.stop()]);
      await nats.stop();
    }
  });
});
