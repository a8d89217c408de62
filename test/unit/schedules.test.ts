/**
 * The schedule service (control-plane/triggers/schedules.ts) over a real
 * registry, run service and fleet (an in-process agent connection), with a
 * fake clock and a timer the test fires: fires start runs, catch-up after a
 * restart, concurrency, pause and resume, re-declared schedules.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { HelloOut, ServerMessage } from '../../proto/index.js';
import { ApiError } from '../../control-plane/errors.js';
import { Fleet } from '../../control-plane/fleet.js';
import { Runs } from '../../control-plane/runs.js';
import type { AuditEvent } from '../../control-plane/security/audit.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import { REPLAN_MS, Schedules, type ScheduleTimers } from '../../control-plane/triggers/schedules.js';
import type { AgentConnection } from '../../control-plane/transport/agent-link.js';
import { Workflows } from '../../control-plane/workflows.js';

const silent = pino({ level: 'silent' });
const T0 = Date.parse('2026-12-02T10:00:00.300Z');

const doc = (cron: string, extra = '') => `name: tick
${extra}params:
  who: { type: string }
triggers:
  - name: every-2s
    cron: "${cron}"
    params: { who: cron }
    catchup: CATCHUP
steps:
  - id: s
    target: { labels: { pool: p } }
    run: "true"
`;

function harness() {
  let now = T0;
  const store = new MemoryStore();
  const fleet = new Fleet(store, () => now);
  const sent: ServerMessage[] = [];
  const conn: AgentConnection = { transport: 'grpc', peer: 'a1', send: (m) => void sent.push(m), close: () => undefined };
  fleet.connect(conn, { name: 'a1', labels: { pool: 'p' }, instanceId: 'i', bootId: 'b', runningAttempts: [] } as unknown as HelloOut);
  const workflows = new Workflows(store, () => now);
  const runs = new Runs(store, fleet, workflows, silent, () => now);
  const audit: AuditEvent[] = [];
  const armed: number[] = [];
  const timers: ScheduleTimers = { set: (_fn, ms) => armed.push(ms), clear: () => undefined };
  const make = () => new Schedules({ store, workflows, submit: (r) => runs.submit(r), log: silent, now: () => now, audit: { record: (e) => void audit.push(e) }, timers });
  return {
    store,
    runs,
    workflows,
    audit,
    armed,
    sent,
    make,
    at: (iso: string) => (now = Date.parse(iso)),
    async apply(catchup: string, cron = '*/2 * * * * *', extra = '') {
      await workflows.apply(doc(cron, extra).replace('CATCHUP', catchup), 'tick.yaml');
    },
    scheduled: () => store.listRuns().filter((r) => r.trigger === 'schedule:every-2s'),
  };
}

describe('schedules - the service', () => {
  it('schedules - a fire starts a run of the latest version with the trigger, params and an idempotency key per fire; the timer is armed to the next fire', async () => {
    const h = harness();
    await h.apply('none');
    const s = h.make();
    await s.start();
    expect(h.scheduled()).toEqual([]);
    expect(h.armed.at(-1)).toBe(1_700); // 10:00:02.000 from 10:00:00.300
    h.at('2026-12-02T10:00:02.004Z');
    await s.check();
    const [run] = h.scheduled();
    expect(run).toMatchObject({ workflow: 'tick', workflowVersion: 1, params: { who: 'cron' } });
    expect(h.sent.some((m) => m.assign)).toBe(true);
    expect(h.store.getSchedule('every-2s')).toMatchObject({ lastFireMs: Date.parse('2026-12-02T10:00:02Z'), lastRunId: run.id, lastMessage: '', paused: false });
    expect(h.audit).toEqual([{ actor: { kind: 'system', id: 'schedule:every-2s' }, action: 'schedule.fire', target: run.id, result: 'ok', detail: { workflow: 'tick', fire: '2026-12-02T10:00:02.000Z' } }]);
    const [view] = s.list();
    expect(view).toMatchObject({ workflow: 'tick', version: 1, nextMs: Date.parse('2026-12-02T10:00:04Z'), trigger: { name: 'every-2s', cron: '*/2 * * * * *', timezone: 'UTC', catchup: 'none' } });
    s.stop();
  });

  it('schedules - the timer is never armed further than a minute ahead (a clock jump or DST is re-read)', async () => {
    const h = harness();
    await h.apply('none', '0 2 * * *');
    const s = h.make();
    await s.start();
    expect(h.armed.at(-1)).toBe(REPLAN_MS);
    s.stop();
  });

  for (const [catchup, expected, message] of [
    ['none', [], '5 missed fires not started (catchup: none)'],
    ['latest', ['2026-12-02T10:00:12.000Z'], '4 missed fires not started (catchup: latest)'],
    ['all', ['2026-12-02T10:00:04.000Z', '2026-12-02T10:00:06.000Z', '2026-12-02T10:00:08.000Z', '2026-12-02T10:00:10.000Z', '2026-12-02T10:00:12.000Z'], ''],
  ] as const) {
    it(`schedules - after a restart, fires missed while down follow catchup ${catchup}`, async () => {
      const h = harness();
      await h.apply(catchup);
      const before = h.make();
      await before.start();
      h.at('2026-12-02T10:00:02.001Z');
      await before.check();
      before.stop();
      // Down from here to 10:00:13: fires at 04, 06, 08, 10 and 12 were missed.
      h.at('2026-12-02T10:00:13.000Z');
      const after = h.make();
      await after.start();
      const fires = h.scheduled().filter((r) => r.createdMs === Date.parse('2026-12-02T10:00:13Z'));
      expect(fires.map((r) => r.id).length).toBe(expected.length);
      const rec = h.store.getSchedule('every-2s')!;
      expect(rec.cursorMs).toBe(Date.parse('2026-12-02T10:00:13Z'));
      expect(rec.lastMessage).toBe(message);
      if (expected.length) expect(new Date(rec.lastFireMs).toISOString()).toBe(expected[expected.length - 1]);
      expect(h.audit.slice(1).map((e) => e.detail?.fire)).toEqual(expected);
      after.stop();
    });
  }

  it('schedules - overlaps follow concurrency: skip records RUN_SKIPPED as the last message, queue queues', async () => {
    for (const concurrency of ['skip', 'queue'] as const) {
      const h = harness();
      await h.apply('none', '*/2 * * * * *', `concurrency: ${concurrency}\n`);
      const s = h.make();
      await s.start();
      h.at('2026-12-02T10:00:02.001Z');
      await s.check();
      h.at('2026-12-02T10:00:04.001Z');
      await s.check();
      const rec = h.store.getSchedule('every-2s')!;
      const runs = h.scheduled();
      if (concurrency === 'skip') {
        expect(runs).toHaveLength(1);
        expect(rec.lastRunId).toBe('');
        expect(rec.lastMessage).toMatch(/^RUN_SKIPPED: run r-\S+ of tick is still (pending|running) and the workflow has concurrency: skip/);
        expect(h.audit.at(-1)?.result).toBe('RUN_SKIPPED');
      } else {
        // Newest first: the second fire's run waits (pending) for the first (running).
        expect(runs.map((r) => r.status)).toEqual(['pending', 'running']);
        expect(rec.lastRunId).toBe(runs[0].id);
      }
      s.stop();
    }
  });

  it('schedules - paused: no fires and no next fire; resumed: fires missed while paused are not caught up', async () => {
    const h = harness();
    await h.apply('all');
    const s = h.make();
    await s.start();
    const paused = await s.pause('every-2s', 'tok-1');
    expect(paused).toMatchObject({ nextMs: 0, record: { paused: true, changedBy: 'tok-1' } });
    h.at('2026-12-02T10:00:09.000Z');
    await s.check();
    expect(h.scheduled()).toEqual([]);
    h.at('2026-12-02T10:00:09.500Z');
    const resumed = await s.resume('every-2s', 'tok-1');
    expect(resumed).toMatchObject({ nextMs: Date.parse('2026-12-02T10:00:10Z'), record: { paused: false, cursorMs: Date.parse('2026-12-02T10:00:09.500Z') } });
    await s.check();
    expect(h.scheduled()).toEqual([]);
    h.at('2026-12-02T10:00:10.002Z');
    await s.check();
    expect(h.scheduled()).toHaveLength(1);
    s.stop();
  });

  it('schedules - a pause survives a restart; pausing twice changes nothing', async () => {
    const h = harness();
    await h.apply('all');
    const s = h.make();
    await s.start();
    await s.pause('every-2s', 'a');
    expect((await s.pause('every-2s', 'b')).record.changedBy).toBe('a');
    s.stop();
    h.at('2026-12-02T10:00:30Z');
    const again = h.make();
    await again.start();
    expect(h.scheduled()).toEqual([]);
    expect(again.list()[0]).toMatchObject({ nextMs: 0, record: { paused: true } });
    again.stop();
  });

  it('schedules - an unknown name is SCHEDULE_NOT_FOUND listing the schedules there are', async () => {
    const h = harness();
    await h.apply('none');
    const s = h.make();
    await s.start();
    const err = await s.pause('every-3s', 'a').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ code: 'SCHEDULE_NOT_FOUND', message: 'no schedule named "every-3s"; schedules: every-2s', hint: 'list them with `drover schedules`' });
    s.stop();
  });

  it('schedules - a re-applied workflow: a changed cron starts from then on, a removed schedule stops and its record goes', async () => {
    const h = harness();
    await h.apply('all');
    const s = h.make();
    await s.start();
    h.at('2026-12-02T10:00:05.000Z');
    await h.apply('all', '*/3 * * * * *');
    await s.check();
    // The new cron's 10:00:03 is before it was applied: not caught up.
    expect(h.scheduled()).toEqual([]);
    expect(h.store.getSchedule('every-2s')).toMatchObject({ spec: '*/3 * * * * *|UTC', cursorMs: Date.parse('2026-12-02T10:00:05Z') });
    await h.workflows.apply('name: tick\nparams:\n  who: { type: string }\nsteps:\n  - id: s\n    target: { labels: { pool: p } }\n    run: "true"\n', 'tick.yaml');
    await s.check();
    expect(s.list()).toEqual([]);
    expect(h.store.getSchedule('every-2s')).toBeUndefined();
    h.at('2026-12-02T10:00:07.000Z');
    await s.check();
    expect(h.scheduled()).toEqual([]);
    s.stop();
  });
});
