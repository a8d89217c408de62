/**
 * Disk faults (EIO, ENOSPC, EPERM, EROFS) injected into every write of the
 * store, its change log and the run log files: nothing crashes, no log record
 * is lost or merged into the next, a torn tail is cut, an unreadable record
 * is reported, and the store's health flips and recovers by itself.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ChangeLog } from '../../control-plane/store/change-log.js';
import { LogFiles } from '../../control-plane/store/log-files.js';
import { LowdbStore } from '../../control-plane/store/lowdb-store.js';
import type { LogRecord, RunRecord } from '../../control-plane/store/store.js';
import { FaultyDisk, WRITE_OPS, type Errno } from '../helpers/faulty-disk.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'drover-faults-'));
const CODES: Errno[] = ['EIO', 'ENOSPC', 'EPERM', 'EROFS'];
const rec = (text: string, step = 's'): LogRecord => ({ t: 1, step, attempt: 'r/s/1/a', agent: 'a', stream: 'stdout', text, seq: 1 });
/** The file's lines, each of which must be a whole record. */
const fileTexts = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as LogRecord).text);

const run = (id: string): RunRecord => ({
  id,
  workflow: 'w',
  status: 'running',
  createdMs: 1,
  startedMs: 1,
  endedMs: 0,
  params: {},
  message: '',
  cancelRequested: false,
  deadlineExceeded: false,
  workflowVersion: 0,
  plan: { workflow: 'w', hash: 'h', params: {}, paramsJson: '{}', deadlineMs: 0, concurrency: 'allow', onAgentLost: 'fail', steps: [], groups: [] },
  steps: {},
});

async function until(what: string, ok: () => boolean, ms = 5000) {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('log files - disk faults', () => {
  for (const code of CODES) {
    it(`log files - a write failing with ${code} keeps the records in memory, in order, and writes each once when the disk heals`, async () => {
      const dir = tmp();
      const disk = new FaultyDisk().fail({ ops: ['writeSync'], code });
      const logs = new LogFiles(dir, { disk });
      expect(() => logs.append('r', rec('1'))).not.toThrow();
      logs.append('r', rec('2'));
      expect(logs.read('r').map((r) => r.text)).toEqual(['1', '2']);
      await expect(logs.sync()).rejects.toMatchObject({ code });
      disk.heal();
      logs.append('r', rec('3'));
      await logs.sync();
      expect(fileTexts(logs.path('r'))).toEqual(['1', '2', '3']);
      expect(logs.pendingBytes).toBe(0);
      logs.close();
    });
  }

  it('log files - the records of one append (one agent message) are written together or not at all', async () => {
    const dir = tmp();
    const disk = new FaultyDisk();
    const logs = new LogFiles(dir, { disk });
    disk.fail({ ops: ['writeSync'], code: 'ENOSPC', short: true });
    logs.append('r', rec('m1'), rec('m2'), rec('m3'));
    expect(logs.read('r').map((r) => r.text)).toEqual(['m1', 'm2', 'm3']);
    await expect(logs.sync()).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(readFileSync(logs.path('r'), 'utf8')).toBe('');
    disk.heal();
    await logs.sync();
    expect(fileTexts(logs.path('r'))).toEqual(['m1', 'm2', 'm3']);
    logs.close();
  });

  it('log files - a short write is cut back, so the record written again never merges with the next', async () => {
    const dir = tmp();
    const disk = new FaultyDisk();
    const logs = new LogFiles(dir, { disk });
    logs.append('r', rec('a0'));
    disk.fail({ ops: ['writeSync'], code: 'ENOSPC', short: true });
    logs.append('r', rec('a1 a longer line that is torn in half by the full disk'));
    await expect(logs.sync()).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(fileTexts(logs.path('r'))).toEqual(['a0']);
    disk.heal();
    logs.append('r', rec('a2'));
    await logs.sync();
    expect(fileTexts(logs.path('r'))).toEqual(['a0', 'a1 a longer line that is torn in half by the full disk', 'a2']);
  });

  it('log files - a failed fdatasync writes the records since the last good one again, once', async () => {
    const dir = tmp();
    const disk = new FaultyDisk();
    const logs = new LogFiles(dir, { disk });
    logs.append('r', rec('b0'));
    await logs.sync();
    logs.append('r', rec('b1'));
    disk.fail({ ops: ['fdatasync'], code: 'EIO', times: 1 });
    await expect(logs.sync()).rejects.toMatchObject({ code: 'EIO' });
    expect(logs.read('r').map((r) => r.text)).toEqual(['b0', 'b1']);
    await logs.sync();
    expect(fileTexts(logs.path('r'))).toEqual(['b0', 'b1']);
  });

  it('log files - when the cut back fails too, the next write cuts first: no torn bytes, no merged line', async () => {
    const dir = tmp();
    const disk = new FaultyDisk();
    const logs = new LogFiles(dir, { disk });
    logs.append('r', rec('c0'));
    disk.fail({ ops: ['writeSync'], code: 'ENOSPC', short: true, times: 1 }).fail({ ops: ['ftruncateSync'], code: 'EIO', times: 1 });
    logs.append('r', rec('c1 is torn and its cut fails'));
    expect(readFileSync(logs.path('r'), 'utf8').endsWith('\n')).toBe(false);
    // What readers see skips the torn bytes and has the record from memory: no notice for a failure being retried.
    expect(logs.read('r').map((r) => r.text)).toEqual(['c0', 'c1 is torn and its cut fails']);
    logs.append('r', rec('c2'));
    await logs.sync();
    expect(fileTexts(logs.path('r'))).toEqual(['c0', 'c1 is torn and its cut fails', 'c2']);
  });

  it('log files - a torn tail left by a crash is reported by the reader and cut at the first append', async () => {
    const dir = tmp();
    const whole = `${JSON.stringify(rec('d0'))}\n`;
    writeFileSync(join(dir, 'r.ndjson'), `${whole}{"t":1,"step":"build","attempt":"r/bu`);
    const warnings: string[] = [];
    const logs = new LogFiles(dir, { warn: (_f, m) => warnings.push(m) });
    const seen = logs.read('r');
    expect(seen.map((r) => r.text)).toEqual(['d0', `[drover: 1 unreadable log record at byte ${whole.length} of ${logs.path('r')} skipped]\n`]);
    expect(seen[1]).toMatchObject({ step: 'build', stream: 'stderr' });
    logs.read('r');
    expect(warnings.filter((w) => w.startsWith('unreadable log record'))).toHaveLength(1);
    logs.append('r', rec('d1'));
    await logs.sync();
    expect(fileTexts(logs.path('r'))).toEqual(['d0', 'd1']);
    expect(warnings.some((w) => w.startsWith('cut a torn last log record'))).toBe(true);
  });

  it('log files - an unreadable record in the middle is shown as a notice in its place, the records around it kept', () => {
    const dir = tmp();
    const first = `${JSON.stringify(rec('e0'))}\n`;
    writeFileSync(join(dir, 'r.ndjson'), `${first}not json\n${JSON.stringify(rec('e2'))}\n`);
    const logs = new LogFiles(dir);
    expect(logs.read('r').map((r) => r.text)).toEqual(['e0', `[drover: 1 unreadable log record at byte ${first.length} of ${logs.path('r')} skipped]\n`, 'e2']);
  });

  it('log files - past 64 MiB waiting for the disk the backlog is full; nothing is dropped', async () => {
    const dir = tmp();
    const disk = new FaultyDisk().fail({ ops: ['writeSync'], code: 'ENOSPC' });
    const logs = new LogFiles(dir, { disk });
    const mib = 'x'.repeat(1024 * 1024);
    for (let i = 0; i < 65; i++) logs.append('r', rec(`${i} ${mib}`));
    expect(logs.backlogFull).toBe(true);
    disk.heal();
    await logs.sync();
    expect(logs.backlogFull).toBe(false);
    expect(fileTexts(logs.path('r')).map((t) => t.split(' ')[0])).toEqual(Array.from({ length: 65 }, (_, i) => String(i)));
  });
});

describe('change log - disk faults', () => {
  it('change log - an append whose cut back fails is cut before the next append; batches never merge', async () => {
    const base = join(tmp(), 'state.changes');
    const disk = new FaultyDisk();
    const log = new ChangeLog(base, 1, disk);
    await log.append('["a"]\n');
    disk.fail({ ops: ['fdatasync'], code: 'EIO', times: 1 }).fail({ ops: ['ftruncateSync'], code: 'EIO', times: 1 });
    await expect(log.append('["x"]\n')).rejects.toMatchObject({ code: 'EIO' });
    await log.append('["y"]\n');
    expect(ChangeLog.read(base, 1)).toEqual({ changes: [['a'], ['y']], unreadable: 0 });
    log.close();
  });

  it('change log - a torn tail is cut when the log is opened to append; garbled lines before it are counted', async () => {
    const base = join(tmp(), 'state.changes');
    writeFileSync(ChangeLog.path(base, 1), '["a"]\n{garbled\n["b"]\n["c');
    expect(ChangeLog.read(base, 1)).toEqual({ changes: [['a'], ['b']], unreadable: 1 });
    const log = new ChangeLog(base, 1);
    await log.append('["d"]\n');
    expect(readFileSync(ChangeLog.path(base, 1), 'utf8')).toBe('["a"]\n{garbled\n["b"]\n["d"]\n');
    log.close();
  });
});

describe('store (lowdb) - disk faults', () => {
  const silent = pino({ level: 'silent' });

  for (const code of CODES) {
    it(`store (lowdb) - ${code}: unhealthy naming the dir and the error, retries by itself, and a waiting flush resolves once a write succeeds`, async () => {
      const dir = tmp();
      const disk = new FaultyDisk();
      const store = new LowdbStore({ dataDir: dir, disk, log: silent });
      await store.open();
      disk.fail({ ops: WRITE_OPS, code });
      store.putRun(run('a'));
      await expect(store.flush()).rejects.toMatchObject({ code });
      expect(store.health()).toMatchObject({ healthy: false, dir, code });
      // A flush asked now waits for the store's own next try (after RETRY_MIN_MS), which fails as well.
      const asked = Date.now();
      await expect(store.flush()).rejects.toMatchObject({ code });
      expect(Date.now() - asked).toBeGreaterThanOrEqual(200);
      expect(store.health().healthy).toBe(false);
      disk.heal();
      // No new change: the next try by itself succeeds, and whoever waits goes on.
      await store.flush();
      expect(store.health()).toEqual({ healthy: true });
      await store.close();
      const again = new LowdbStore({ dataDir: dir });
      await again.open();
      expect(again.getRun('a')?.status).toBe('running');
      await again.close();
    });
  }

  it('store (lowdb) - a log line that cannot be written fails the flush, stays readable, and is stored once when the disk heals', async () => {
    const dir = tmp();
    const disk = new FaultyDisk();
    const store = new LowdbStore({ dataDir: dir, disk, log: silent });
    await store.open();
    store.putRun(run('r'));
    await store.flush();
    disk.fail({ ops: ['writeSync', 'ftruncateSync'], path: /\/logs\//, code: 'ENOSPC' });
    for (const t of ['l1', 'l2', 'l3']) store.appendLog('r', rec(t));
    expect((await store.readLogs('r')).map((l) => l.text)).toEqual(['l1', 'l2', 'l3']);
    await expect(store.flush()).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(store.health()).toMatchObject({ healthy: false, code: 'ENOSPC' });
    store.appendLog('r', rec('l4'));
    disk.heal();
    await store.flush();
    expect(store.health().healthy).toBe(true);
    expect(fileTexts(join(dir, 'logs', 'r.ndjson'))).toEqual(['l1', 'l2', 'l3', 'l4']);
    await store.close();
  });

  it('store (lowdb) - opens on a disk that cannot be written (its state is in the logs), and a change then waits for the disk', async () => {
    const dir = tmp();
    const first = new LowdbStore({ dataDir: dir });
    await first.open();
    first.putRun(run('kept'));
    await first.flush();
    // Killed here: the next start replays the change log and tries to rewrite the document.
    const disk = new FaultyDisk().fail({ ops: WRITE_OPS, code: 'EROFS' });
    const store = new LowdbStore({ dataDir: dir, disk, log: silent });
    await store.open();
    expect(store.getRun('kept')).toBeDefined();
    store.putRun(run('new'));
    await expect(store.flush()).rejects.toMatchObject({ code: 'EROFS' });
    expect(store.health()).toMatchObject({ healthy: false, code: 'EROFS' });
    disk.heal();
    await until('the store to write again', () => store.health().healthy);
    const again = new LowdbStore({ dataDir: dir });
    await again.open();
    expect(again.listRuns().map((r) => r.id).sort()).toEqual(['kept', 'new']);
  });

  it('store (lowdb) - a discarded run is gone after a restart, also when its record reached the change log', async () => {
    const dir = tmp();
    const store = new LowdbStore({ dataDir: dir, log: silent });
    await store.open();
    store.putRun(run('phantom'));
    await store.flush();
    store.discardRun('phantom');
    expect(store.getRun('phantom')).toBeUndefined();
    expect(store.listRuns()).toEqual([]);
    await store.flush();
    // A crash now: the next start replays the run's record and then its deletion.
    const again = new LowdbStore({ dataDir: dir });
    await again.open();
    expect(again.getRun('phantom')).toBeUndefined();
    await again.close();
  });
});
