import { describe, expect, it } from 'vitest';
import { FollowPrinter } from '../../sdk/cli/render/follow.js';
import type { Step } from '../../sdk/index.js';

const T0 = new Date(2024, 0, 1, 12, 0, 1).getTime();

function step(over: Partial<Step>): Step {
  return {
    id: 'create-account', parent: '', kind: 'run', agent: 'dir-1', status: 'pending', attempt: 1, exitCode: 0, startedAt: 0, endedAt: 0,
    cpuSeconds: 0, peakRssBytes: 0, outputs: {}, message: '', needs: [], isFinally: false, attempts: [], waiting: '', ...over,
  };
}

describe('sdk cli follow', () => {
  it('follow - prints each step state change once, and log lines by stream', () => {
    const out: string[] = [];
    const err: string[] = [];
    const printer = new FollowPrinter({ out: (t) => out.push(t), err: (t) => err.push(t) }, () => T0);
    printer.handle({ type: 'step', step: step({ status: 'running', startedAt: T0 }) });
    printer.handle({ type: 'step', step: step({ status: 'running', startedAt: T0 }) });
    printer.handle({ type: 'log', line: { runId: 'r', stepId: 'create-account', attemptId: 'a', attempt: 1, agent: 'dir-1', stream: 'stdout', text: 'uid=1001', at: T0 } });
    printer.handle({ type: 'log', line: { runId: 'r', stepId: 'create-account', attemptId: 'a', attempt: 1, agent: 'dir-1', stream: 'stderr', text: 'warn', at: T0 } });
    printer.handle({ type: 'step', step: step({ status: 'failed', startedAt: T0, endedAt: T0 + 2100, exitCode: 3, message: 'exit status 3' }) });
    expect(out).toEqual([
      '[12:00:01] create-account  running    on dir-1\n',
      'create-account | uid=1001\n',
      '[12:00:03] create-account  failed     exit 3 in 2.1s: exit status 3\n',
    ]);
    expect(err).toEqual(['create-account | warn\n']);
  });
});
