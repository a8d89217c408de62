import { describe, expect, it } from 'vitest';
import { OutputError, parseOutputs } from '../../agent/executor/outputs.js';

describe('agent outputs', () => {
  it('agent outputs - reads key=value and heredoc values', () => {
    expect(parseOutputs('uid=42\nname=a=b\nnotes<<EOF\nline 1\nline 2\nEOF\n')).toEqual({ uid: '42', name: 'a=b', notes: 'line 1\nline 2' });
  });

  it('agent outputs - rejects an unterminated heredoc and a line without =', () => {
    expect(() => parseOutputs('x<<END\nabc\n')).toThrow(OutputError);
    expect(() => parseOutputs('x<<END\nabc\n')).toThrow(/no closing END line/);
    expect(() => parseOutputs('garbage\n')).toThrow(/use key=value or key<<DELIM/);
  });
});

describe('agent log lines', () => {
  it('agent log lines - chunks hold whole lines; a partial line waits for its newline', async () => {
    const { LineSplitter } = await import('../../agent/executor/lines.js');
    const out: string[] = [];
    const s = new LineSplitter((b) => out.push(b.toString()));
    s.push(Buffer.from('one\ntw'));
    s.push(Buffer.from('o\nthree'));
    expect(out).toEqual(['one\n', 'two\n']);
    s.flush();
    expect(out).toEqual(['one\n', 'two\n', 'three']);
  });
});
