/**
 * Run logs read by pages from a position (store/log-page.ts) through the
 * offset index (store/log-index.ts): from the middle, filtered while read,
 * with records appended between pages, around unreadable and torn records,
 * after a restart, and over a 200,000-line file a bounded page at a time.
 */
import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LogFiles } from '../../control-plane/store/log-files.js';
import { BLOCK_RECORDS } from '../../control-plane/store/log-index.js';
import { LowdbStore } from '../../control-plane/store/lowdb-store.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import { LOG_PAGE_RECORDS, type LogFilter, type LogRecord, type Store } from '../../control-plane/store/store.js';
import { FaultyDisk } from '../helpers/faulty-disk.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'drover-logs-'));
const rec = (text: string, over: Partial<LogRecord> = {}): LogRecord => ({ t: 1, step: 's', attempt: 'r/s/1/a', agent: 'a', stream: 'stdout', text, seq: 1, ...over });
const line = (r: LogRecord) => `${JSON.stringify(r)}\n`;
const texts = (rs: LogRecord[]) => rs.map((r) => r.text);
/** What one page reads at most: its budget, one more chunk, and the byte that says whether the file ends whole (store/log-page.ts). */
const PAGE_BYTES = 1024 * 1024 + 64 * 1024 + 1;

/** Every page from `from` to the end of the log as it is now. */
function pages(logs: LogFiles, runId: string, filter?: LogFilter, limit?: number, from = 0) {
  const out: { records: LogRecord[]; next: number; size: number }[] = [];
  for (;;) {
    const page = logs.page(runId, { from, filter, limit });
    out.push(page);
    if (page.next >= page.size) return out;
    expect(page.next, 'a page moves on').toBeGreaterThan(from);
    from = page.next;
  }
}

/** Counts the bytes read from a run's file. */
class CountingDisk extends FaultyDisk {
  bytesRead = 0;
  override readSync(fd: number, into: Buffer, offset: number, length: number, position: number) {
    const n = super.readSync(fd, into, offset, length, position);
    this.bytesRead += n;
    return n;
  }
}

describe('log files - streaming reads', () => {
  it('log files - a page read from the middle goes on where the last one stopped; the pages make the whole log', () => {
    const logs = new LogFiles(tmp());
    for (let i = 0; i < 25; i++) logs.append('r', rec(`${i}`));
    const first = logs.page('r', { limit: 10 });
    expect(texts(first.records)).toEqual(Array.from({ length: 10 }, (_, i) => `${i}`));
    const second = logs.page('r', { from: first.next, limit: 10 });
    expect(texts(second.records)).toEqual(Array.from({ length: 10 }, (_, i) => `${i + 10}`));
    expect(texts(pages(logs, 'r', undefined, 7).flatMap((p) => p.records))).toEqual(texts(logs.read('r')));
    expect(logs.read('r')).toHaveLength(25);
  });

  it('log files - step, attempt, stream and since are applied while reading; a notice naming no step passes a step filter', () => {
    const dir = tmp();
    const rs = [
      rec('a1', { step: 'a', attempt: 'r/a/1/x', t: 10 }),
      rec('b1', { step: 'b', attempt: 'r/b/1/x', t: 20, stream: 'stderr' }),
      rec('a2', { step: 'a', attempt: 'r/a/2/y', t: 30 }),
    ];
    writeFileSync(join(dir, 'r.ndjson'), `${line(rs[0])}garbage\n${line(rs[1])}${line(rs[2])}`);
    const logs = new LogFiles(dir);
    const read = (filter: LogFilter) => texts(pages(logs, 'r', filter).flatMap((p) => p.records)).map((t) => (t.startsWith('[drover:') ? 'notice' : t));
    expect(read({ step: 'a' })).toEqual(['a1', 'notice', 'a2']);
    expect(read({ attempts: new Set(['r/a/2/y', 'r/b/1/x']) })).toEqual(['b1', 'a2']);
    expect(read({ stream: 'stderr' })).toEqual(['notice', 'b1']);
    expect(read({ since: 20 })).toEqual(['b1', 'a2']);
    expect(read({ step: 'b', since: 25 })).toEqual([]);
  });

  it('log files - records appended between pages are read by the later pages, once, and a page that reached the end says so', () => {
    const logs = new LogFiles(tmp());
    for (let i = 0; i < 50; i++) logs.append('r', rec(`old ${i}`));
    const seen: string[] = [];
    let from = 0;
    for (let n = 0; ; n++) {
      const page = logs.page('r', { from, limit: 8 });
      seen.push(...texts(page.records));
      from = page.next;
      if (page.next >= page.size) break;
      if (n < 5) logs.append('r', rec(`new ${n}`), rec(`new ${n}b`));
    }
    expect(seen).toEqual([...Array.from({ length: 50 }, (_, i) => `old ${i}`), ...Array.from({ length: 5 }, (_, n) => [`new ${n}`, `new ${n}b`]).flat()]);
    logs.append('r', rec('after the end'));
    const after = logs.page('r', { from });
    expect(texts(after.records)).toEqual(['after the end']);
    expect(after.next).toBe(after.size);
  });

  it('log files - records waiting for the disk are read after the file at the positions they will have once written', async () => {
    const dir = tmp();
    const disk = new FaultyDisk();
    const logs = new LogFiles(dir, { disk });
    logs.append('r', rec('w0'));
    disk.fail({ ops: ['writeSync'], code: 'ENOSPC' });
    logs.append('r', rec('q1'));
    logs.append('r', rec('q2'));
    const first = logs.page('r', { limit: 2 });
    expect(texts(first.records)).toEqual(['w0', 'q1']);
    disk.heal();
    await logs.sync();
    expect(texts(logs.page('r', { from: first.next }).records)).toEqual(['q2']);
  });

  it('log files - an unreadable record is a notice in its place on whatever page reaches it; a torn tail is shown once and the pages go past it', () => {
    const dir = tmp();
    const whole = `${line(rec('t0'))}not json\n${line(rec('t2'))}`;
    writeFileSync(join(dir, 'r.ndjson'), `${whole}{"t":1,"step":"build","attempt":"r/bu`);
    const disk = new FaultyDisk();
    const logs = new LogFiles(dir, { disk });
    const notice = (at: number) => `[drover: 1 unreadable log record at byte ${at} of ${logs.path('r')} skipped]\n`;
    // Records queued while the file cannot be opened to append come after the torn tail.
    disk.fail({ ops: ['openSync'], path: /r\.ndjson/, code: 'EIO' });
    logs.append('r', rec('q0'));
    logs.append('r', rec('q1'));
    const all = ['t0', notice(line(rec('t0')).length), 't2', notice(whole.length), 'q0', 'q1'];
    for (const limit of [1, 2, 3, 1000]) expect(texts(pages(logs, 'r', undefined, limit).flatMap((p) => p.records)), `limit ${limit}`).toEqual(all);
    expect(pages(logs, 'r', { step: 'build' }).flatMap((p) => p.records)).toMatchObject([
      { step: '', text: notice(line(rec('t0')).length) },
      { step: 'build', stream: 'stderr', text: notice(whole.length) },
    ]);
  });

  it('log files - after a restart the index is rebuilt by one pass: seqs are found, and a filtered read passes over blocks without reading them', () => {
    const dir = tmp();
    const n = BLOCK_RECORDS * 20;
    const body = Array.from({ length: n }, (_, i) => line(rec(`line ${i}`, { agent: i % 2 ? 'b' : 'a', seq: i + 1, step: i === n - 1 ? 'last' : 's' }))).join('');
    writeFileSync(join(dir, 'r.ndjson'), body);
    const disk = new CountingDisk();
    const logs = new LogFiles(dir, { disk });
    expect(logs.seqs('r')).toEqual(new Map([['a', n - 1], ['b', n]]));
    const scan = disk.bytesRead;
    expect(scan).toBeGreaterThanOrEqual(body.length);
    expect(scan).toBeLessThan(body.length * 1.1);
    disk.bytesRead = 0;
    expect(texts(pages(logs, 'r', { step: 'last' }).flatMap((p) => p.records))).toEqual([`line ${n - 1}`]);
    // Only the last block is read.
    expect(disk.bytesRead).toBeLessThan(body.length / 10);
    // Appends keep the index: a record of a new step is found without reading the blocks before it.
    logs.append('r', rec('fresh', { step: 'fresh', agent: 'c', seq: 7 }));
    disk.bytesRead = 0;
    expect(texts(pages(logs, 'r', { step: 'fresh' }).flatMap((p) => p.records))).toEqual(['fresh']);
    expect(disk.bytesRead).toBeLessThan(body.length / 10);
    expect(logs.seqs('r').get('c')).toBe(7);
    logs.close();
  });

  it('log files - a first read after a restart builds the index as it goes, so the next filtered read is short', () => {
    const dir = tmp();
    const body = Array.from({ length: BLOCK_RECORDS * 10 }, (_, i) => line(rec(`${i}`, { step: i < BLOCK_RECORDS ? 'early' : 's' }))).join('');
    writeFileSync(join(dir, 'r.ndjson'), body);
    const disk = new CountingDisk();
    const logs = new LogFiles(dir, { disk });
    expect(pages(logs, 'r').flatMap((p) => p.records)).toHaveLength(BLOCK_RECORDS * 10);
    disk.bytesRead = 0;
    expect(pages(logs, 'r', { step: 'early' }).flatMap((p) => p.records)).toHaveLength(BLOCK_RECORDS);
    expect(disk.bytesRead).toBeLessThan(body.length / 4);
  });

  it('log files - a 200,000-line log is read in bounded pages: records per page and bytes per page stay small', () => {
    const dir = tmp();
    const file = join(dir, 'r.ndjson');
    const lines = 200_000;
    for (let i = 0; i < lines; i += 10_000) appendFileSync(file, Array.from({ length: 10_000 }, (_, j) => line(rec(`line ${i + j} ${'x'.repeat(40)}`))).join(''));
    const disk = new CountingDisk();
    const logs = new LogFiles(dir, { disk });
    let count = 0;
    let from = 0;
    let pagesRead = 0;
    for (;;) {
      disk.bytesRead = 0;
      const page = logs.page('r', { from });
      pagesRead++;
      expect(page.records.length).toBeLessThanOrEqual(LOG_PAGE_RECORDS);
      expect(disk.bytesRead, 'bytes read for one page').toBeLessThanOrEqual(PAGE_BYTES);
      if (page.records.length) expect(page.records[0].text).toMatch(new RegExp(`^line ${count} `));
      count += page.records.length;
      if (page.next >= page.size) break;
      from = page.next;
    }
    expect(count).toBe(lines);
    expect(pagesRead).toBe(lines / LOG_PAGE_RECORDS);
    // After a restart, a filter that matches nothing still returns after a bounded read.
    const none = new LogFiles(dir, { disk });
    disk.bytesRead = 0;
    const empty = none.page('r', { filter: { step: 'nowhere' } });
    expect(empty.records).toEqual([]);
    expect(disk.bytesRead).toBeLessThanOrEqual(PAGE_BYTES);
    expect(empty.next).toBeLessThan(empty.size);
  });
});

for (const [name, make] of [
  ['lowdb', () => new LowdbStore({ dataDir: tmp() })],
  ['memory', () => new MemoryStore()],
] as [string, () => Store][]) {
  it(`store (${name}) - readLogPage pages through a run's log with a filter, and storedLogSeqs follows appends`, async () => {
    const s = make();
    await s.open();
    for (let i = 0; i < 30; i++) s.appendLog('r', rec(`${i}`, { step: i % 3 ? 's' : 'third', seq: i + 1, agent: i % 2 ? 'g2' : 'g1' }));
    const seen: string[] = [];
    for (let from = 0; ; ) {
      const page = s.readLogPage('r', { from, limit: 4, filter: { step: 'third' } });
      expect(page.records.length).toBeLessThanOrEqual(4);
      seen.push(...texts(page.records));
      if (page.next >= page.size) break;
      from = page.next;
    }
    expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => `${i * 3}`));
    expect(s.readLogPage('nothing')).toEqual({ records: [], next: 0, size: 0 });
    expect(s.storedLogSeqs('r')).toEqual(new Map([['g1', 29], ['g2', 30]]));
    s.appendLog('r', rec('late', { agent: 'g1', seq: 31 }));
    expect(s.storedLogSeqs('r').get('g1')).toBe(31);
    await s.close();
  });
}
