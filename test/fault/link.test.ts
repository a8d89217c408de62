/**
 * Fault 3: an agent partitioned from the control plane (a TCP proxy under the
 * test's control) for longer than the heartbeat timeout keeps running and
 * logging; after the link heals every log line and status arrives, in order,
 * once.
 * Fault 4: the same Assign and the same StepEvent delivered twice each take
 * effect once.
 */
import * as grpc from '@grpc/grpc-js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { droverV1, type AgentMessage, type ServerMessageOut } from '../../proto/index.js';
import { DroverClient } from '../../sdk/index.js';
import { startAgent, startServer, tempDir, waitFor } from '../helpers/cluster.js';
import { rawAgent } from '../helpers/raw-agent.js';
import { startProxy } from '../helpers/tcp-proxy.js';
import { lines, storedLogs } from './fault-helpers.js';

describe('fault - link faults', () => {
  it('fault - a partition longer than the heartbeat timeout loses and repeats nothing', async () => {
    const server = await startServer({ args: ['--heartbeat-interval-ms', '300', '--lost-after-ms', '60000'] });
    const proxy = await startProxy(server.address);
    startAgent({ address: proxy.address, enrollToken: server.enrollToken }, 'edge', { site: 'far' });
    const client = new DroverClient(server.clientOptions);
    await waitFor(async () => (await client.fleet.get('edge').catch(() => undefined))?.state === 'connected', 20_000, () => 'edge to connect');

    const dir = tempDir('drover-fault3-');
    const effects = join(dir, 'effects');
    const file = join(dir, 'wf.json');
    writeFileSync(
      file,
      JSON.stringify({
        name: 'partitioned',
        steps: [
          { id: 'ticker', target: { agent: 'edge' }, env: { E: effects }, run: 'echo "$DROVER_STEP_ID" >> "$E"; for i in $(seq 1 60); do echo "tick $i"; sleep 0.05; done' },
          { id: 'after', needs: ['ticker'], target: { agent: 'edge' }, env: { E: effects }, run: 'echo "$DROVER_STEP_ID" >> "$E"; echo local follow-up' },
        ],
      }),
    );
    const handle = await client.runs.launch(file);
    await waitFor(() => lines(effects).length > 0, 15_000, () => 'the ticker to start');
    proxy.cut();
    const cutAt = Date.now();
    await waitFor(async () => (await client.fleet.get('edge')).state === 'disconnected', 10_000, () => 'edge to be marked disconnected');
    // Both steps finish on the agent while it is cut off (edge autonomy).
    await waitFor(() => lines(effects).length === 2, 15_000, () => 'both steps to run while partitioned');
    const duringPartition = (await client.runs.get(handle.id)).status;
    await new Promise((r) => setTimeout(r, 500));
    proxy.heal();
    const run = await handle.wait();
    const healedAfter = Date.now() - cutAt;
    const logs = await storedLogs(server.dataDir, run.id);
    console.log(`fault 3: partitioned ${healedAfter} ms (heartbeat timeout 900 ms); run ${duringPartition} during it; ${logs.length} log lines delivered after healing`);

    expect(duringPartition).toBe('running');
    expect(run.status).toBe('succeeded');
    expect(logs.filter((l) => l.step === 'ticker').map((l) => l.text)).toEqual(Array.from({ length: 60 }, (_, i) => `tick ${i + 1}\n`));
    expect(logs.filter((l) => l.step === 'after').map((l) => l.text)).toEqual(['local follow-up\n']);
    expect(lines(effects)).toEqual(['ticker', 'after']);
    client.close();
    await proxy.close();
  });

  it('fault - a repeated Assign runs nothing twice; a repeated StepEvent and LogChunk apply once', async () => {
    const server = await startServer();
    const proxy = await startProxy(server.address);
    startAgent({ address: proxy.address, enrollToken: server.enrollToken }, 'real', { kind: 'real' });
    const client = new DroverClient(server.clientOptions);
    await waitFor(async () => (await client.fleet.get('real').catch(() => undefined))?.state === 'connected', 20_000, () => 'agent');
    const dir = tempDir('drover-fault4-');
    const effects = join(dir, 'effects');
    const file = join(dir, 'wf.json');
    writeFileSync(file, JSON.stringify({ name: 'once', steps: [{ id: 'slow', target: { agent: 'real' }, env: { E: effects }, run: 'echo "$DROVER_ATTEMPT_ID" >> "$E"; sleep 2' }] }));
    const handle = await client.runs.launch(file);
    await waitFor(() => lines(effects).length === 1, 15_000, () => 'the step to start');
    // Drop the link: on reconnect the control plane sends the same Assign again.
    proxy.cut();
    await new Promise((r) => setTimeout(r, 300));
    proxy.heal();
    const run = await handle.wait();
    expect(run.status).toBe('succeeded');
    expect(lines(effects)).toHaveLength(1);

    // A hand-driven agent sends the same sequenced messages twice.
    const raw = await rawAgent(server, 'manual');
    const { call, inbox, send } = raw.connect();
    send({ seq: 0, hello: { name: 'manual', labels: { kind: 'manual' }, instanceId: 'manual-1' } });
    await waitFor(() => inbox.some((m) => m.welcome), 10_000, () => 'welcome');
    writeFileSync(file, JSON.stringify({ name: 'manual', steps: [{ id: 'm', target: { agent: 'manual' }, run: 'true' }] }));
    const manual = await client.runs.launch(file);
    const assign = await waitFor(() => inbox.find((m) => m.assign)?.assign ?? undefined, 10_000, () => 'assign');
    const attemptId = `${assign.runId}/m/1/manual`;
    const base = { runId: assign.runId, stepId: 'm', attemptId, attempt: 1 };
    const messages: AgentMessage[] = [
      { seq: 1, stepEvent: { ...base, phase: 'STEP_PHASE_STARTED', startedAtMs: Date.now() } },
      { seq: 2, log: { ...base, stream: 'LOG_STREAM_STDOUT', data: Buffer.from('only once\n'), atMs: Date.now() } },
      { seq: 3, stepEvent: { ...base, phase: 'STEP_PHASE_SUCCEEDED', exitCode: 0, outputs: { n: '1' }, endedAtMs: Date.now() } },
    ];
    for (const m of [...messages, ...messages]) send(m);
    const acked = await waitFor(() => inbox.filter((m) => m.ack).some((m) => m.ack!.seq === 3), 10_000, () => 'ack of seq 3');
    const done = await manual.wait();
    call.cancel();
    raw.close();
    const logs = await storedLogs(server.dataDir, done.id);
    console.log(`fault 4: re-sent Assign after a link drop ran the step ${lines(effects).length} time; 3 sequenced messages sent twice gave ${logs.length} log line`);
    expect(acked).toBe(true);
    expect(done.status).toBe('succeeded');
    expect(done.steps[0].outputs).toEqual({ n: '1' });
    expect(logs.map((l) => l.text)).toEqual(['only once\n']);
    client.close();
    await proxy.close();
  });
});
