import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readableLogLine } from '../../sdk/cli/dev/log-line.js';
import { logTail } from '../../sdk/cli/dev/supervisor.js';

const AT = new Date(2026, 11, 1, 21, 45, 10).getTime();

describe('dev log tail - pino lines made readable', () => {
  it('dev log tail - time, level, component, message and the line\'s own fields; the same-on-every-line ones left out', () => {
    const line = JSON.stringify({ level: 50, time: AT, pid: 1, hostname: 'h', agent: 'dir-1', name: 'drover-agent', component: 'link', server: '127.0.0.1:7400', err: { message: 'connect ECONNREFUSED 127.0.0.1:7400', code: 'ECONNREFUSED' }, msg: 'cannot connect' });
    expect(readableLogLine(line)).toBe('21:45:10 ERROR link: cannot connect server=127.0.0.1:7400 err="connect ECONNREFUSED 127.0.0.1:7400 (ECONNREFUSED)"');
    expect(readableLogLine(JSON.stringify({ level: 30, time: AT, msg: 'agent starting', labels: { role: 'directory' } }))).toBe('21:45:10 INFO agent starting labels={"role":"directory"}');
  });

  it('dev log tail - a line that is not pino JSON is shown as it is', () => {
    for (const l of ['Error: boom', '    at main (file.js:1:2)', '{not json', '{"a":1}']) expect(readableLogLine(l)).toBe(l);
  });

  it('dev log tail - the tail of a crashed agent\'s log reads as text, not JSON', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'drover-tail-')), 'a.log');
    writeFileSync(file, [JSON.stringify({ level: 60, time: AT, component: 'main', msg: 'state dir is locked', dir: '/tmp/x' }), 'Error: exit'].join('\n') + '\n');
    expect(logTail(file)).toBe('  | 21:45:10 FATAL main: state dir is locked dir=/tmp/x\n  | Error: exit\n');
  });
});
