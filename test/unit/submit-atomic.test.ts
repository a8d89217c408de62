/**
 * Submission is atomic: the store's write fails at each step a submission
 * makes (the change-log append, its fdatasync, the next log's open, the
 * snapshot's temp file, its fsync, the .bak link, the rename, the folder's
 * fsync), once alone and once as a disk that dies there. Whatever happened:
 * an error is UNAVAILABLE, nothing was dispatched, and the run is in no store
 * opened later; a success is dispatched and in every store opened later.
 */
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { HelloOut, ServerMessage } from '../../proto/index.js';
import { AgentSessions } from '../../control-plane/agent-sessions.js';
import { UnavailableError } from '../../control-plane/errors.js';
import { Fleet } from '../../control-plane/fleet.js';
import { Runs } from '../../control-plane/runs.js';
import type { Credentials } from '../../control-plane/security/credentials.js';
import type { ControlSigner } from '../../control-plane/security/signer.js';
import { LowdbStore } from '../../control-plane/store/lowdb-store.js';
import type { AgentConnection } from '../../control-plane/transport/agent-link.js';
import { Workflows } from '../../control-plane/workflows.js';
import { FaultyDisk, WRITE_OPS, type Fault, type Op } from '../helpers/faulty-disk.js';

const silent = pino({ level: 'silent' });
const tmp = () => mkdtempSync(join(tmpdir(), 'drover-submit-'));
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const WORKFLOW = JSON.stringify({ name: 'w', steps: [{ id: 's', target: { labels: { pool: 'p' } }, run: 'echo hi' }] });
const hello = (name: string) => ({ name, labels: { pool: 'p' }, instanceId: `i-${name}`, bootId: 'b', runningAttempts: [] }) as unknown as HelloOut;

async function cluster(dir: string, disk: FaultyDisk, snapshotEveryWrite: boolean) {
  const store = new LowdbStore({ dataDir: dir, disk, log: silent, coalesceMs: 1, ...(snapshotEveryWrite ? { compactMinBytes: 1 } : {}) });
  await store.open();
  const fleet = new Fleet(store, Date.now);
  const sent: ServerMessage[] = [];
  const conn: AgentConnection = { transport: 'grpc', peer: 'test', send: (m) => void sent.push(m), close: () => undefined };
  fleet.connect(conn, hello('a1'));
  await store.flush();
  const runs = new Runs(store, fleet, new Workflows(store, Date.now), silent, Date.now);
  return { store, runs, sent };
}

async function runIdsIn(dir: string): Promise<string[]> {
  const s = new LowdbStore({ dataDir: dir });
  await s.open();
  const ids = s.listRuns().map((r) => r.id);
  await s.close();
  return ids;
}

interface Step {
  name: string;
  faults: (dir: string) => Omit<Fault, 'code'>[];
}

const at = (ops: Op[], path: RegExp): Omit<Fault, 'code'> => ({ ops, path });
const STEPS: Step[] = [
  { name: 'change-log append', faults: () => [at(['write'], /state\.changes\.\d+$/)] },
  { name: 'change-log fdatasync', faults: () => [at(['fdatasync'], /state\.changes\.\d+$/)] },
  { name: 'next change log opened', faults: () => [at(['openSync'], /state\.changes\.\d+$/)] },
  { name: 'snapshot temp file opened', faults: () => [at(['open'], /state\.json\.tmp$/)] },
  { name: 'snapshot temp file written', faults: () => [at(['write'], /state\.json\.tmp$/)] },
  { name: 'snapshot temp file fsync', faults: () => [at(['fsync'], /state\.json\.tmp$/)] },
  { name: 'previous document linked as .bak', faults: () => [at(['link'], /\.bak$/)] },
  { name: 'snapshot renamed over state.json', faults: () => [at(['rename'], /state\.json\.tmp -> /)] },
  { name: 'data dir fsync', faults: (dir) => [at(['fsync'], new RegExp(`^${escape(dir)}$`))] },
  // Both halves of a snapshot fail, the folder's fsync after the rename among them: the rename is undone.
  { name: 'data dir fsync and the change-log append', faults: (dir) => [at(['fsync'], new RegExp(`^${escape(dir)}$`)), at(['write', 'fdatasync'], /state\.changes\.\d+$/)] },
];

describe('submission - atomic under disk faults', () => {
  let errors = 0;
  let successes = 0;
  for (const snapshotEveryWrite of [false, true]) {
    for (const step of STEPS) {
      for (const dies of [false, true]) {
        const shape = `${snapshotEveryWrite ? 'snapshot' : 'change-log'} write, ${step.name} ${dies ? 'fails and the disk dies there' : 'fails'}`;
        it(`submission - ${shape}: an error means no run anywhere and nothing dispatched; a success means it is durable`, async () => {
          const dir = tmp();
          const disk = new FaultyDisk();
          const { store, runs, sent } = await cluster(dir, disk, snapshotEveryWrite);
          for (const f of step.faults(dir)) disk.fail({ ...f, code: 'EIO', cascade: dies });
          const outcome = await runs.submit({ source: WORKFLOW, filename: 'w.json', params: {} }).then(
            (r) => ({ id: r.id, err: undefined }),
            (err: unknown) => ({ id: '', err }),
          );
          // A crash right now: what a restart would load.
          const crashed = tmp();
          cpSync(dir, crashed, { recursive: true });
          disk.heal();
          await store.flush();
          const expectIdle = store.health();
          expect(expectIdle.healthy).toBe(true);
          const assigns = sent.filter((m) => m.assign);
          if (outcome.err) {
            errors++;
            expect(outcome.err).toBeInstanceOf(UnavailableError);
            expect((outcome.err as UnavailableError).code).toBe('UNAVAILABLE');
            expect((outcome.err as Error).message).toMatch(new RegExp(`^the control plane cannot write its data dir ${escape(dir)} \\(EIO: i/o error\\); no run was started$`));
            expect(assigns).toEqual([]);
            expect(store.listRuns()).toEqual([]);
            // In doubt only where the bytes reached the disk and it died before they could be taken back: the cut of
            // the change log failed, or the folder's fsync after the rename (and so its undo). docs/reliability.md.
            const failed = (op: Op, path?: string) => disk.calls.some((c) => c.failed && c.op === op && (!path || c.path === path));
            const inDoubt = failed('ftruncateSync') || (dies && failed('fsync', dir));
            if (!inDoubt) expect(await runIdsIn(crashed)).toEqual([]);
            await store.close();
            expect(await runIdsIn(dir)).toEqual([]);
          } else {
            successes++;
            expect(assigns.map((m) => m.assign!.runId)).toEqual([outcome.id]);
            expect(await runIdsIn(crashed)).toEqual([outcome.id]);
            await store.close();
            expect(await runIdsIn(dir)).toEqual([outcome.id]);
          }
        });
      }
    }
  }

  it('submission - the cases above include refusals and successes', () => {
    expect(errors).toBeGreaterThanOrEqual(8);
    expect(successes).toBeGreaterThanOrEqual(4);
  });

  it('submission - refused with UNAVAILABLE while the store is unhealthy, and taken again once a write succeeds, by itself', async () => {
    const dir = tmp();
    const disk = new FaultyDisk();
    const { store, runs, sent } = await cluster(dir, disk, false);
    disk.fail({ ops: WRITE_OPS, code: 'ENOSPC' });
    await expect(runs.submit({ source: WORKFLOW, filename: 'w.json', params: {} })).rejects.toThrow(/\(ENOSPC: no space left on device\); no run was started$/);
    const refused = await runs.submit({ source: WORKFLOW, filename: 'w.json', params: {} }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(UnavailableError);
    expect((refused as UnavailableError).hint).toBe('free space or fix the disk; the control plane retries by itself and takes new runs again once a write succeeds');
    disk.heal();
    for (let i = 0; i < 100 && !store.health().healthy; i++) await new Promise((r) => setTimeout(r, 20));
    expect(store.health().healthy).toBe(true);
    const ok = await runs.submit({ source: WORKFLOW, filename: 'w.json', params: {} });
    expect(sent.filter((m) => m.assign).map((m) => m.assign!.runId)).toEqual([ok.id]);
    expect(store.listRuns().map((r) => r.id)).toEqual([ok.id]);
    await store.close();
  });
});

describe('agent sessions - acks and a failing disk', () => {
  it('agent sessions - an ack waits through failing writes, follows the first write that succeeds, and Welcome never names a seq not on disk', async () => {
    const dir = tmp();
    const disk = new FaultyDisk();
    const { store } = await cluster(dir, disk, false);
    const fleet = new Fleet(store, Date.now);
    const fakeRuns = { agentConnected: () => undefined, applyStepEvent: () => undefined, applyLog: () => undefined, isActive: () => false, ended: { subscribe: () => () => undefined } } as unknown as Runs;
    const sessions = new AgentSessions(fleet, fakeRuns, store, silent, {
      heartbeatIntervalMs: 5000,
      signer: {} as ControlSigner,
      credentials: {} as Credentials,
      now: Date.now,
      natsJwt: async () => '',
    });
    const link = () => {
      const got: ServerMessage[] = [];
      const conn: AgentConnection = { transport: 'grpc', peer: 'test', send: (m) => void got.push(m), close: () => sessions.onClose(conn) };
      return { conn, got };
    };
    const first = link();
    sessions.onMessage(first.conn, { seq: 0, body: 'hello', hello: hello('a2') } as never);
    expect(first.got[0].welcome?.appliedSeq).toBe(0);
    disk.fail({ ops: WRITE_OPS, code: 'ENOSPC' });
    for (let seq = 1; seq <= 3; seq++) sessions.onMessage(first.conn, { seq, body: 'log', log: { runId: 'r', stepId: 's', attemptId: 'x', stream: 'LOG_STREAM_STDOUT', data: Buffer.from('x\n'), atMs: 1 } } as never);
    await new Promise((r) => setTimeout(r, 700));
    expect(store.health().healthy).toBe(false);
    expect(first.got.filter((m) => m.ack)).toEqual([]);
    // A reconnect meanwhile: the agent must keep seqs 1-3 (applied in memory, not on disk).
    first.conn.close();
    const second = link();
    sessions.onMessage(second.conn, { seq: 0, body: 'hello', hello: hello('a2') } as never);
    expect(second.got[0].welcome?.appliedSeq).toBe(0);
    sessions.onMessage(second.conn, { seq: 1, body: 'log', log: { runId: 'r', stepId: 's', attemptId: 'x', stream: 'LOG_STREAM_STDOUT', data: Buffer.from('x\n'), atMs: 1 } } as never);
    disk.heal();
    for (let i = 0; i < 300 && !second.got.some((m) => m.ack); i++) await new Promise((r) => setTimeout(r, 20));
    // Acked by itself: the duplicate's ack covers what was applied, now that it is on disk.
    expect(second.got.filter((m) => m.ack).map((m) => m.ack!.seq)).toEqual([3]);
    const third = link();
    sessions.onMessage(third.conn, { seq: 0, body: 'hello', hello: hello('a2') } as never);
    expect(third.got[0].welcome?.appliedSeq).toBe(3);
    await store.close();
  });
});
