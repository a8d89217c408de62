/**
 * The agent's journal and attempt ledger on a failing disk (ENOSPC, EIO,
 * EROFS, short writes): nothing throws, nothing is sent that is not on disk,
 * no record is torn into the next, and what waited is written, in order, once
 * the disk heals.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';

/** Files opened under this prefix fail their writes while `fault` is set. */
const PREFIX = join(tmpdir(), 'drover-agent-disk-');
const state = vi.hoisted(() => ({ fault: '' as '' | 'ENOSPC' | 'EIO' | 'EROFS' | 'short', fds: new Set<number>() }));

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const fail = (code: string) => Object.assign(new Error(`${code}: injected`), { code });
  const wrapped = {
    ...fs,
    openSync: (path: import('node:fs').PathLike, ...rest: unknown[]) => {
      const fd = (fs.openSync as (...a: unknown[]) => number)(path, ...rest);
      if (String(path).includes('drover-agent-disk-')) state.fds.add(fd);
      return fd;
    },
    writeSync: (fd: number, data: unknown, ...rest: unknown[]) => {
      if (state.fds.has(fd) && state.fault) {
        if (state.fault !== 'short') throw fail(state.fault);
        // Half of it reaches the file, then the disk is full.
        const buf = typeof data === 'string' ? Buffer.from(data) : (data as Buffer);
        return fs.writeSync(fd, buf.subarray(0, Math.floor(buf.length / 2)));
      }
      return (fs.writeSync as (...a: unknown[]) => number)(fd, data, ...rest);
    },
  };
  return { ...wrapped, default: wrapped };
});

const { Journal } = await import('../../agent/journal.js');
const { Ledger } = await import('../../agent/ledger.js');

const dir = () => mkdtempSync(PREFIX);
const ev = (n: number) => ({ stepEvent: { runId: 'r', stepId: `s${n}`, phase: 'STEP_PHASE_STARTED' as const } });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterEach(() => {
  state.fault = '';
});

describe('agent on a failing disk', () => {
  for (const fault of ['ENOSPC', 'EIO', 'EROFS', 'short'] as const) {
    it(`journal - ${fault}: messages wait unsent, in order, and are written and sent when the disk heals`, async () => {
      const d = dir();
      const j = new Journal(d, 64 * 1024 * 1024);
      j.open();
      const sent: string[] = [];
      j.attach((m) => sent.push(`${m.seq}:${m.stepEvent?.stepId}`), 0);
      let failing = 0;
      let healed = 0;
      j.onFailing = () => failing++;
      j.onWritable = () => healed++;
      expect(j.push(ev(1))).toBe(true);
      state.fault = fault;
      expect(() => j.push(ev(2))).not.toThrow();
      expect(j.push(ev(3))).toBe(false);
      expect(j.writable).toBe(false);
      // Nothing is sent that is not on disk.
      expect(sent).toEqual(['1:s1']);
      state.fault = '';
      await sleep(400);
      expect(j.writable).toBe(true);
      expect(sent).toEqual(['1:s1', '2:s2', '3:s3']);
      expect([failing, healed]).toEqual([1, 1]);
      j.close();
      // Every record whole on disk: nothing torn, nothing merged.
      const again = new Journal(d, 64 * 1024 * 1024);
      expect(again.open()).toEqual({ recovered: 3, discardedBytes: 0 });
      const replay: string[] = [];
      again.attach((m) => replay.push(`${m.seq}:${m.stepEvent?.stepId}`), 0);
      expect(replay).toEqual(['1:s1', '2:s2', '3:s3']);
      again.close();
    });
  }

  it('journal - log chunks waiting in memory are bounded; step events are always kept', () => {
    const j = new Journal(dir(), 64 * 1024 * 1024);
    j.open();
    state.fault = 'ENOSPC';
    const data = Buffer.alloc(1024 * 1024, 0x61);
    for (let i = 0; i < 12; i++) j.push({ log: { runId: 'r', stepId: 's', attemptId: 'r/s/1/a', stream: 'LOG_STREAM_STDOUT', data, atMs: 1 } });
    expect(j.droppedLogBytes).toBeGreaterThanOrEqual(4 * 1024 * 1024);
    expect(j.push(ev(1))).toBe(false);
    j.close();
  });

  for (const fault of ['ENOSPC', 'short'] as const) {
    it(`ledger - ${fault}: a start that cannot be written is refused; an end waits and is written when the disk heals`, async () => {
      const file = join(dir(), 'ledger.ndjson');
      const l = new Ledger(file);
      l.open();
      expect(l.started('r/a/1/x', { supervised: true })).toBe(true);
      state.fault = fault;
      expect(l.started('r/b/1/x')).toBe(false);
      expect(l.has('r/b/1/x')).toBe(false);
      expect(() => l.ended('r/a/1/x', 'succeeded', { k: 'v' })).not.toThrow();
      // Known in memory at once: a repeated Assign does not run it again.
      expect(l.get('r/a/1/x')?.ended).toBe('succeeded');
      expect(l.pendingLines).toBe(1);
      state.fault = '';
      await sleep(1200);
      expect(l.pendingLines).toBe(0);
      l.close();
      for (const line of readFileSync(file, 'utf8').split('\n').filter(Boolean)) expect(() => JSON.parse(line)).not.toThrow();
      const again = new Ledger(file);
      expect(again.open()).toEqual([]);
      expect(again.get('r/a/1/x')).toEqual({ attemptId: 'r/a/1/x', ended: 'succeeded', outputs: { k: 'v' } });
      again.close();
    });
  }
});
