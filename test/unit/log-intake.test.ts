import { describe, expect, it } from 'vitest';
import { LogIntake } from '../../control-plane/log-intake.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import type { LogChunkOut } from '../../proto/index.js';

const chunk = (data: Buffer | string, extra: Partial<LogChunkOut> = {}): LogChunkOut => ({
  runId: 'r-1',
  stepId: 's',
  attemptId: 'r-1/s/1/edge-a',
  stream: 'LOG_STREAM_STDOUT',
  data: Buffer.from(data),
  atMs: 5,
  offset: 0,
  ...extra,
});

describe('log intake - chunks from agents', () => {
  it('log intake - a chunk at or below the highest seq the run log holds from that agent is a duplicate', () => {
    const store = new MemoryStore();
    store.appendLog('r-1', { t: 1, step: 's', attempt: 'r-1/s/1/edge-a', agent: 'edge-a', stream: 'stdout', text: 'x\n', seq: 7 });
    const intake = new LogIntake(store, () => true);
    const table = [
      { agent: 'edge-a', seq: 6, duplicate: true },
      { agent: 'edge-a', seq: 7, duplicate: true },
      { agent: 'edge-a', seq: 8, duplicate: false },
      { agent: 'edge-a', seq: 8, duplicate: true },
      { agent: 'edge-b', seq: 1, duplicate: false },
      // seq 0: the sender did not number it; never a duplicate.
      { agent: 'edge-a', seq: 0, duplicate: false },
    ];
    for (const t of table) expect(intake.duplicate(t.agent, chunk('y\n'), t.seq), JSON.stringify(t)).toBe(t.duplicate);
  });

  it('log intake - lines keep their ends, and a character split across two chunks arrives whole', () => {
    const intake = new LogIntake(new MemoryStore(), () => true);
    const text = Buffer.from('größe\nzwei\nlast');
    const cut = text.indexOf(0xc3) + 1; // inside the two bytes of "ö"
    const first = intake.lines(chunk(text.subarray(0, cut)), 1);
    const second = intake.lines(chunk(text.subarray(cut), { stream: 'LOG_STREAM_STDERR' }), 2);
    const third = intake.lines(chunk(text.subarray(cut)), 3);
    expect(first).toMatchObject({ stream: 'stdout', lines: ['gr'], seq: 1, atMs: 5 });
    // Another stream has its own decoder: its bytes are not joined to stdout's.
    expect(second.stream).toBe('stderr');
    expect(third.lines).toEqual(['öße\n', 'zwei\n', 'last']);
  });

  it('log intake - chunks naming a run that is not active keep no decoder; forget drops what a run kept', () => {
    let active = false;
    const intake = new LogIntake(new MemoryStore(), () => active);
    const half = Buffer.from('ö').subarray(0, 1);
    intake.lines(chunk(half, { runId: 'r-unknown', attemptId: 'r-unknown/s/1/edge-a' }), 0);
    expect(intake.lines(chunk(Buffer.from('ö').subarray(1), { runId: 'r-unknown', attemptId: 'r-unknown/s/1/edge-a' }), 0).lines).toEqual(['\ufffd']);
    active = true;
    intake.lines(chunk(half), 1);
    intake.forget('r-1');
    expect(intake.lines(chunk(Buffer.from('ö').subarray(1)), 2).lines).toEqual(['\ufffd']);
  });
});
