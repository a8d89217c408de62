import { mkdtempSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Journal } from '../../agent/journal.js';
import { Ledger } from '../../agent/ledger.js';

const dir = () => mkdtempSync(join(tmpdir(), 'drover-journal-'));
const MiB = 1024 * 1024;
const ev = (n: number) => ({ stepEvent: { runId: 'r', stepId: `s${n}`, phase: 'STEP_PHASE_STARTED' as const } });

function collect(j: Journal, applied = 0): number[] {
  const seqs: number[] = [];
  j.attach((m) => seqs.push(m.seq as number), applied);
  return seqs;
}

describe('agent journal', () => {
  it('agent journal - resends the unacked tail in order after a reconnect', () => {
    const j = new Journal(dir(), 64 * MiB);
    j.open();
    const first = collect(j);
    for (let i = 0; i < 4; i++) j.push(ev(i));
    expect(first).toEqual([1, 2, 3, 4]);
    j.ack(1);
    j.detach();
    j.push(ev(5));
    expect(collect(j, 2)).toEqual([3, 4, 5]);
  });

  it('agent journal - survives a restart: numbering continues and the tail is replayed from disk', () => {
    const d = dir();
    const a = new Journal(d, 64 * MiB);
    a.open();
    for (let i = 0; i < 5; i++) a.push(ev(i));
    a.close();
    const b = new Journal(d, 64 * MiB);
    expect(b.open()).toEqual({ recovered: 5, discardedBytes: 0 });
    const seqs: string[] = [];
    b.attach((m) => seqs.push(`${m.seq}:${m.stepEvent?.stepId}`), 2);
    expect(seqs).toEqual(['3:s2', '4:s3', '5:s4']);
    b.push(ev(9));
    expect(seqs.at(-1)).toBe('6:s9');
  });

  it('agent journal - a torn tail is detected and discarded, never misread', () => {
    const d = dir();
    const a = new Journal(d, 64 * MiB);
    a.open();
    for (let i = 0; i < 3; i++) a.push(ev(i));
    a.close();
    const seg = join(d, readdirSync(d)[0]);
    truncateSync(seg, statSync(seg).size - 3);
    const b = new Journal(d, 64 * MiB);
    const report = b.open();
    expect(report.recovered).toBe(2);
    expect(report.discardedBytes).toBeGreaterThan(0);
    expect(collect(b)).toEqual([1, 2]);
  });

  it('agent journal - a corrupt record ends the journal there', () => {
    const d = dir();
    const a = new Journal(d, 64 * MiB);
    a.open();
    for (let i = 0; i < 3; i++) a.push(ev(i));
    a.close();
    const seg = join(d, readdirSync(d)[0]);
    const bytes = readFileSync(seg);
    bytes[bytes.length - 2] ^= 0xff;
    writeFileSync(seg, bytes);
    const b = new Journal(d, 64 * MiB);
    expect(b.open().recovered).toBe(2);
    expect(collect(b)).toEqual([1, 2]);
  });

  it('agent journal - keeps at most a window in flight; acks let the rest through', () => {
    const j = new Journal(dir(), 64 * MiB);
    j.open();
    const seqs = collect(j);
    for (let i = 0; i < 3000; i++) j.push(ev(i));
    expect(seqs).toHaveLength(1024);
    j.ack(1000);
    expect(seqs.length).toBe(2024);
    expect(seqs.slice(1020, 1030)).toEqual([1021, 1022, 1023, 1024, 1025, 1026, 1027, 1028, 1029, 1030]);
    j.ack(2024);
    expect(seqs.length).toBe(3000);
    j.ack(3000);
    expect(j.unacked).toBe(0);
  });

  it('agent journal - past its size bound drops log output, never step events', () => {
    const j = new Journal(dir(), 1 * MiB);
    j.open();
    const big = { log: { runId: 'r', stepId: 's', data: Buffer.alloc(200 * 1024, 97) } };
    for (let i = 0; i < 8; i++) j.push(big);
    j.push(ev(1));
    expect(j.droppedLogBytes).toBe(3 * 200 * 1024);
    expect(j.unacked).toBe(6);
  });
});

describe('agent ledger', () => {
  it('agent ledger - attempts started but not ended are returned after a restart; a torn line is ignored', () => {
    const file = join(dir(), 'ledger.ndjson');
    const a = new Ledger(file);
    a.open();
    a.started('r/a/1/x');
    a.ended('r/a/1/x', 'succeeded', { k: 'v' });
    a.started('r/b/1/x');
    a.close();
    writeFileSync(file, `${readFileSync(file, 'utf8')}{"a":"r/c/1/x"`);
    const b = new Ledger(file);
    expect(b.open().map((e) => e.attemptId)).toEqual(['r/b/1/x']);
    expect(b.get('r/a/1/x')).toEqual({ attemptId: 'r/a/1/x', ended: 'succeeded', outputs: { k: 'v' } });
    expect(b.has('r/c/1/x')).toBe(false);
  });
});

describe('agent journal - numbering', () => {
  it('agent journal - numbering continues after a restart even when everything was acknowledged', () => {
    const d = dir();
    const a = new Journal(d, 64 * MiB);
    a.open();
    collect(a);
    for (let i = 0; i < 5; i++) a.push(ev(i));
    a.ack(5);
    a.close();
    const b = new Journal(d, 64 * MiB);
    b.open();
    const seqs = collect(b, 5);
    b.push(ev(6));
    expect(seqs).toEqual([6]);
  });
});

describe('agent journal - a control plane ahead of the journal', () => {
  it('agent journal - a Welcome whose applied seq is past the journal numbers new messages above it, and they survive a restart', () => {
    const d = dir();
    const a = new Journal(d, 64 * MiB);
    a.open();
    for (let i = 0; i < 3; i++) a.push(ev(i));
    a.close();
    // The tail was lost (a restored state dir): the control plane applied up to 10.
    const b = new Journal(d, 64 * MiB);
    b.open();
    const seqs = collect(b, 10);
    b.push(ev(11));
    b.push(ev(12));
    expect(seqs).toEqual([11, 12]);
    b.close();
    const c = new Journal(d, 64 * MiB);
    expect(c.open().discardedBytes).toBe(0);
    expect(collect(c, 10)).toEqual([11, 12]);
    c.push(ev(13));
    expect(c.unacked).toBe(3);
  });
});

describe('agent ledger - finished runs', () => {
  it('agent ledger - forgetRun drops the run\'s ended attempts, keeps a running one, and stays forgotten after a restart', () => {
    const file = join(dir(), 'ledger.ndjson');
    const a = new Ledger(file);
    a.open();
    a.started('r1/a/1/x');
    a.ended('r1/a/1/x', 'retried', {});
    a.started('r1/a/2/x');
    a.ended('r1/a/2/x', 'succeeded', {});
    a.started('r1/b/1/x');
    a.started('r2/a/1/x');
    a.ended('r2/a/1/x', 'failed', {});
    expect(a.endedIds(10)).toEqual(['r1/a/1/x', 'r1/a/2/x', 'r2/a/1/x']);
    a.forgetRun('r1');
    expect(a.endedIds(10)).toEqual(['r2/a/1/x']);
    expect(a.has('r1/b/1/x')).toBe(true);
    a.close();
    const b = new Ledger(file);
    expect(b.open().map((e) => e.attemptId)).toEqual(['r1/b/1/x']);
    expect(b.has('r1/a/2/x')).toBe(false);
    expect(b.endedIds(1)).toEqual(['r2/a/1/x']);
  });
});
