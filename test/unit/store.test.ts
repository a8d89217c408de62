import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LowdbStore } from '../../control-plane/store/lowdb-store.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import { StoreError, type AgentRecord, type RunRecord, type ScheduleRecord, type StepRecord, type Store } from '../../control-plane/store/store.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'drover-store-'));

const run = (id: string, createdMs: number, status: RunRecord['status'] = 'succeeded'): RunRecord => ({
  id,
  workflow: 'w',
  status,
  createdMs,
  startedMs: createdMs,
  endedMs: 0,
  params: {},
  message: '',
  cancelRequested: false,
  deadlineExceeded: false,
  workflowVersion: 0,
  plan: { workflow: 'w', hash: 'h', params: {}, paramsJson: '{}', deadlineMs: 0, concurrency: 'allow', onAgentLost: 'fail', steps: [], groups: [] },
  steps: {},
});

for (const [name, make] of [
  ['lowdb', () => new LowdbStore({ dataDir: tmp() })],
  ['memory', () => new MemoryStore()],
] as [string, () => Store][]) {
  describe(`store (${name})`, () => {
    it(`store (${name}) - lists runs newest first and reads logs back in order`, async () => {
      const s = make();
      await s.open();
      s.putRun(run('a', 1));
      s.putRun(run('b', 2));
      for (let i = 0; i < 5; i++) s.appendLog('a', { t: i, step: 's', attempt: 'x', agent: 'g', stream: 'stdout', text: `${i}` });
      await s.flush();
      expect(s.listRuns().map((r) => r.id)).toEqual(['b', 'a']);
      expect((await s.readLogs('a')).map((l) => l.text)).toEqual(['0', '1', '2', '3', '4']);
      s.appendLog('a', { t: 9, step: 's', attempt: 'x', agent: 'g1', stream: 'stdout', text: 'x', seq: 7 });
      s.appendLog('a', { t: 9, step: 's', attempt: 'x', agent: 'g1', stream: 'stdout', text: 'y', seq: 9 });
      s.appendLog('a', { t: 9, step: 's', attempt: 'x', agent: 'g2', stream: 'stdout', text: 'z', seq: 3 });
      expect(s.storedLogSeqs('a')).toEqual(new Map([['g1', 9], ['g2', 3]]));
      await s.close();
    });

    it(`store (${name}) - keeps schedule records by name, sorted, and deletes them`, async () => {
      const s = make();
      await s.open();
      s.putSchedule(schedule('nightly'));
      s.putSchedule(schedule('hourly', { paused: true }));
      await s.flush();
      expect(s.listSchedules().map((x) => [x.name, x.paused])).toEqual([['hourly', true], ['nightly', false]]);
      expect(s.deleteSchedule('hourly')).toBe(true);
      expect(s.deleteSchedule('hourly')).toBe(false);
      expect(s.getSchedule('nightly')?.cursorMs).toBe(5);
      await s.close();
    });
  });
}

function schedule(name: string, over: Partial<ScheduleRecord> = {}): ScheduleRecord {
  return { name, workflow: 'w', spec: '0 2 * * *|UTC', paused: false, cursorMs: 5, lastFireMs: 0, lastRunId: '', lastMessage: '', changedBy: '', changedMs: 0, ...over };
}

describe('store (lowdb) - durability', () => {
  it('store (lowdb) - state survives a restart', async () => {
    const dir = tmp();
    const a = new LowdbStore({ dataDir: dir });
    await a.open();
    a.putRun(run('keep', 1, 'running'));
    await a.close();
    const b = new LowdbStore({ dataDir: dir });
    await b.open();
    expect(b.getRun('keep')?.status).toBe('running');
  });

  it('store (lowdb) - schedule records and their deletion survive a restart, replayed from the change log and from the document', async () => {
    const dir = tmp();
    const a = new LowdbStore({ dataDir: dir });
    await a.open();
    a.putSchedule(schedule('gone'));
    a.putSchedule(schedule('kept', { lastRunId: 'r-1', lastFireMs: 7 }));
    await a.flush();
    a.deleteSchedule('gone');
    await a.flush();
    // No close: what a crash leaves (the change log, not a rewritten document).
    const b = new LowdbStore({ dataDir: dir });
    await b.open();
    expect(b.listSchedules().map((x) => [x.name, x.lastRunId, x.lastFireMs])).toEqual([['kept', 'r-1', 7]]);
    await b.close();
    const c = new LowdbStore({ dataDir: dir });
    await c.open();
    expect(c.listSchedules().map((x) => x.name)).toEqual(['kept']);
  });

  it('store (lowdb) - everything flushed before a SIGKILL is read back intact', async () => {
    const dir = tmp();
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/store-writer.ts', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let lastDurable = 0;
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        const m = [...d.toString().matchAll(/durable (\d+)/g)].pop();
        if (m) lastDurable = Number(m[1]);
        if (lastDurable >= 150) {
          child.kill('SIGKILL');
          resolve();
        }
      });
    });
    await new Promise((r) => child.once('exit', r));
    const s = new LowdbStore({ dataDir: dir });
    await s.open();
    const ids = new Set(s.listRuns().map((r) => r.id));
    for (let i = 1; i <= lastDurable; i++) expect(ids.has(`run-${String(i).padStart(6, '0')}`)).toBe(true);
    expect((await s.readLogs('run-000150')).map((l) => l.text)).toEqual(['line 150\n']);
  });

  it('store (lowdb) - a corrupt state file with no backup is reported with the fix and left untouched', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'state.json'), '{"version":1,"agents":{');
    const s = new LowdbStore({ dataDir: dir });
    const err = await s.open().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).message).toMatch(/state\.json is not valid JSON .*no readable backup.*move it aside/);
    expect(readFileSync(join(dir, 'state.json'), 'utf8')).toBe('{"version":1,"agents":{');
  });

  it('store (lowdb) - a truncated state file is moved aside and the previous generation recovered', async () => {
    const dir = tmp();
    const a = new LowdbStore({ dataDir: dir });
    await a.open();
    a.putRun(run('first', 1));
    await a.flush();
    a.putRun(run('second', 2));
    await a.close();
    const file = join(dir, 'state.json');
    writeFileSync(file, readFileSync(file, 'utf8').slice(0, 40));
    const b = new LowdbStore({ dataDir: dir });
    const recovered = await b.open();
    expect(recovered).toMatch(/was not valid JSON .* moved to .*state\.json\.corrupt-\d+ .*state\.json\.bak\) was loaded/);
    // The change log since that generation is replayed on top: nothing flushed is lost.
    expect(recovered).toMatch(/changes logged after it were replayed/);
    expect(b.listRuns().map((r) => r.id)).toEqual(['second', 'first']);
  });

  it('store (lowdb) - step changes, document rewrites and prunes all survive a crash (change log replayed)', async () => {
    const dir = tmp();
    // A tiny threshold: the document is rewritten (a new log generation) every few writes.
    const a = new LowdbStore({ dataDir: dir, maxRuns: 5, compactMinBytes: 2000 });
    await a.open();
    const steps = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`s${i}`, { id: `s${i}`, status: 'pending' } as StepRecord]));
    for (let i = 1; i <= 20; i++) {
      const r = { ...run(`r${String(i).padStart(2, '0')}`, i, 'running'), steps: steps(3) };
      a.putRun(r);
      await a.flush();
      r.steps.s1.status = 'succeeded';
      r.status = 'succeeded';
      a.putRun(r, [r.steps.s1]);
      await a.flush();
    }
    a.putAgent({ name: 'g', appliedSeq: 42 } as AgentRecord);
    await a.flush();
    // No close(): as if the process was killed here.
    const gens = readdirSync(dir).filter((f) => f.startsWith('state.changes.'));
    expect(gens.length).toBeLessThanOrEqual(3);
    expect((JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { changeGen: number }).changeGen).toBeGreaterThan(3);
    const b = new LowdbStore({ dataDir: dir, maxRuns: 5 });
    await b.open();
    expect(b.listRuns().map((r) => r.id)).toEqual(['r20', 'r19', 'r18', 'r17', 'r16']);
    expect(b.getRun('r20')?.status).toBe('succeeded');
    expect(b.getRun('r20')?.steps.s1.status).toBe('succeeded');
    expect(b.getRun('r20')?.steps.s2.status).toBe('pending');
    expect(b.getAgent('g')?.appliedSeq).toBe(42);
  });

  it('store (lowdb) - prunes the oldest finished runs past maxRuns', async () => {
    const s = new LowdbStore({ dataDir: tmp(), maxRuns: 3 });
    await s.open();
    for (let i = 1; i <= 5; i++) s.putRun(run(`r${i}`, i));
    s.putRun(run('live', 0, 'running'));
    await s.flush();
    expect(s.listRuns().map((r) => r.id).sort()).toEqual(['live', 'r4', 'r5']);
  });
});
