import { describe, expect, it } from 'vitest';
import { FollowPrinter } from '../../sdk/cli/render/follow.js';
import { stepsTable } from '../../sdk/cli/render/runs.js';
import { waitingLines } from '../../sdk/cli/render/step-cells.js';
import type { Step } from '../../sdk/index.js';

const T0 = new Date(2024, 0, 1, 12, 0, 1).getTime();

function step(over: Partial<Step>): Step {
  return {
    id: 'create-account', parent: '', kind: 'run', agent: 'dir-1', status: 'pending', attempt: 1, exitCode: 0, startedAt: 0, endedAt: 0,
    cpuSeconds: 0, peakRssBytes: 0, outputs: {}, message: '', needs: [], isFinally: false, attempts: [], waiting: '', blocked: false, reusedFrom: '', ...over,
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

  it('follow - a pending step says why it waits, once per reason, leaving out the ordinary course (needs, an agent about to start it), and a running one whose agent went away says so', () => {
    const out: string[] = [];
    const printer = new FollowPrinter({ out: (t) => out.push(t), err: () => {} }, () => T0);
    const waiting = 'waiting for agent assets-1, disconnected 40 s ago; lost after 60 s (in 20 s)';
    printer.handle({ type: 'step', step: step({ id: 'provision', agent: 'assets-1', attempt: 0, waiting: 'waiting for needs: create-account' }) });
    printer.handle({ type: 'step', step: step({ id: 'provision', agent: 'assets-1', attempt: 0, waiting: 'waiting for agent assets-1 to start it' }) });
    printer.handle({ type: 'step', step: step({ id: 'provision', agent: 'assets-1', attempt: 0, waiting: 'waiting for a maxParallel slot (2 of 2 running)', blocked: true }) });
    printer.handle({ type: 'step', step: step({ id: 'provision', agent: 'assets-1', attempt: 0, waiting: 'waiting for a maxParallel slot (2 of 2 running)', blocked: true }) });
    printer.handle({ type: 'step', step: step({ id: 'provision', agent: 'assets-1', attempt: 0, waiting, blocked: true }) });
    printer.handle({ type: 'step', step: step({ id: 'provision', agent: 'assets-1', attempt: 0 }) });
    printer.handle({ type: 'step', step: step({ id: 'provision', agent: 'assets-1', status: 'running', startedAt: T0, waiting, blocked: true }) });
    expect(out).toEqual([
      '[12:00:01] provision  waiting    for a maxParallel slot (2 of 2 running)\n',
      '[12:00:01] provision  waiting    for agent assets-1, disconnected 40 s ago; lost after 60 s (in 20 s)\n',
      `[12:00:01] provision  running    on assets-1; ${waiting}\n`,
    ]);
  });

  it('follow - a fan-out parent shows its instances, and a step that never ran shows no exit code', () => {
    const out: string[] = [];
    const printer = new FollowPrinter({ out: (t) => out.push(t), err: () => {} }, () => T0);
    const group = step({ id: 'patch', kind: 'group', agent: '', attempt: 0 });
    const instances = ['edge-a', 'edge-b', 'edge-c'].map((a) => step({ id: `patch[${a}]`, parent: 'patch', agent: a }));
    printer.handle({ type: 'run', run: { steps: [group, ...instances] } as never });
    printer.handle({ type: 'step', step: { ...group, status: 'running', startedAt: T0 } });
    printer.handle({ type: 'step', step: step({ id: 'late', status: 'failed', attempt: 0, endedAt: T0, message: 'the agent was declared lost' }) });
    expect(out).toEqual(['[12:00:01] patch          running    on 3 agents\n', '[12:00:01] late           failed     never ran: the agent was declared lost\n']);
    const table = stepsTable([{ ...group, status: 'running' }, ...instances, step({ id: 'late', status: 'failed', attempt: 0, message: 'x' })], T0);
    expect(table.split('\n')[1]).toMatch(/^patch\s+on 3 agents\s+running\s+-\s+-\s/);
    expect(table.split('\n')[5]).toMatch(/^late\s+dir-1\s+failed\s+-\s+-\s/);
    expect(waitingLines([step({ id: 'a', waiting: 'waiting for needs: b' }), step({ id: 'b' })])).toBe('  a: waiting for needs: b\n');
  });
});
