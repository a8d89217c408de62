/**
 * Idempotent launch (control-plane/launch-keys.ts through Runs.launch) on a
 * real LowdbStore with a fake clock: repeats, other params, concurrency,
 * failures that record no key, expiry, restarts, pruned first runs and a
 * key a torn write lost.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { HelloOut } from '../../proto/index.js';
import { ApiError, UnavailableError } from '../../control-plane/errors.js';
import { Fleet } from '../../control-plane/fleet.js';
import { LaunchKeys } from '../../control-plane/launch-keys.js';
import { Runs } from '../../control-plane/runs.js';
import { LowdbStore } from '../../control-plane/store/lowdb-store.js';
import type { AgentConnection } from '../../control-plane/transport/agent-link.js';
import { Workflows } from '../../control-plane/workflows.js';
import { FaultyDisk } from '../helpers/faulty-disk.js';

const silent = pino({ level: 'silent' });
const HOUR = 3_600_000;
const WORKFLOW = `name: w
params:
  user: { type: string }
  role: { type: string, default: engineer }
steps:
  - id: s
    target: { labels: { pool: p } }
    run: echo hi
`;
const hello = (name: string) => ({ name, labels: { pool: 'p' }, instanceId: `i-${name}`, bootId: 'b', runningAttempts: [] }) as unknown as HelloOut;

async function plane(dir: string, clock: { now: number }, opts: { disk?: FaultyDisk; maxRuns?: number; source?: string } = {}) {
  const store = new LowdbStore({ dataDir: dir, log: silent, coalesceMs: 1, disk: opts.disk, maxRuns: opts.maxRuns });
  await store.open();
  const now = () => clock.now;
  const fleet = new Fleet(store, now);
  const conn: AgentConnection = { transport: 'grpc', peer: 'test', send: () => undefined, close: () => undefined };
  fleet.connect(conn, hello('a1'));
  const runs = new Runs(store, fleet, new Workflows(store, now), silent, now);
  runs.keys = new LaunchKeys(store, now, 24 * HOUR);
  runs.resume();
  const launch = (params: Record<string, string>, key: string, source = opts.source ?? WORKFLOW) => runs.launch({ source, filename: 'w.yaml', params, idempotencyKey: key });
  return { store, runs, launch };
}

const tmp = () => mkdtempSync(join(tmpdir(), 'drover-keys-'));

async function refusal(p: Promise<unknown>): Promise<ApiError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

describe('idempotent launch', () => {
  it('idempotent launch - a repeat answers the first run, deduplicated, and starts nothing', async () => {
    const { store, launch } = await plane(tmp(), { now: Date.UTC(2026, 11, 2) });
    const first = await launch({ user: 'alice' }, 'evt-1');
    // Params equal once bound (the default given explicitly) are the same request.
    const again = await launch({ user: 'alice', role: 'engineer' }, 'evt-1');
    expect(first.deduplicated).toBe(false);
    expect(again).toMatchObject({ runId: first.runId, deduplicated: true });
    expect(store.listRuns().map((r) => r.id)).toEqual([first.runId]);
    expect(first.run).toMatchObject({ idempotencyKey: 'evt-1', trigger: 'api' });
    await store.close();
  });

  it('idempotent launch - the same key with other params is IDEMPOTENCY_KEY_REUSED, and another workflow has keys of its own', async () => {
    const { store, launch } = await plane(tmp(), { now: Date.UTC(2026, 11, 2) });
    const first = await launch({ user: 'alice' }, 'evt-1');
    const err = await refusal(launch({ user: 'bob' }, 'evt-1'));
    expect(err.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(err.message).toBe(`idempotency key "evt-1" of w already started run ${first.runId} with other params; nothing was started`);
    const other = await launch({ user: 'bob' }, 'evt-1', WORKFLOW.replace('name: w', 'name: w2'));
    expect(other.deduplicated).toBe(false);
    expect(store.listRuns()).toHaveLength(2);
    await store.close();
  });

  it('idempotent launch - ten concurrent launches with one key start one run', async () => {
    const { store, launch } = await plane(tmp(), { now: Date.UTC(2026, 11, 2) });
    const all = await Promise.all(Array.from({ length: 10 }, () => launch({ user: 'alice' }, 'evt-c')));
    expect(new Set(all.map((l) => l.runId)).size).toBe(1);
    expect(all.filter((l) => !l.deduplicated)).toHaveLength(1);
    expect(store.listRuns()).toHaveLength(1);
    await store.close();
  });

  it('idempotent launch - malformed keys are INVALID_INPUT naming what is wrong', async () => {
    const { store, launch } = await plane(tmp(), { now: Date.UTC(2026, 11, 2) });
    expect((await refusal(launch({ user: 'a' }, 'x'.repeat(201)))).message).toMatch(/^idempotency key "x{40}…" is 201 characters long$/);
    const bad = await refusal(launch({ user: 'a' }, 'tab\there'));
    expect(bad.code).toBe('INVALID_INPUT');
    expect(bad.message).toBe('idempotency key "tab\\there" holds characters other than printable ASCII');
    expect(bad.hint).toBe('use 1-200 printable ASCII characters, e.g. a UUID or the sender\'s event id');
    expect(store.listRuns()).toHaveLength(0);
    await store.close();
  });

  it('idempotent launch - a launch that fails records no key: the retry starts the run', async () => {
    const disk = new FaultyDisk();
    const { store, launch } = await plane(tmp(), { now: Date.UTC(2026, 11, 2) }, { disk });
    await store.flush();
    disk.fail({ ops: ['write', 'fdatasync'], path: /state\.changes\.\d+$/, code: 'ENOSPC' });
    const waiting = Promise.all([launch({ user: 'alice' }, 'evt-f'), launch({ user: 'alice' }, 'evt-f')].map((p) => p.catch((e: unknown) => e)));
    const [a, b] = await waiting;
    // The first failed on the disk and left no key; the one that waited for it was refused too (the store is unhealthy).
    expect(a).toBeInstanceOf(UnavailableError);
    expect(b).toBeInstanceOf(UnavailableError);
    expect(store.getLaunchKey('w', 'evt-f')).toBeUndefined();
    expect(store.listRuns()).toEqual([]);
    disk.heal();
    await new Promise((r) => setTimeout(r, 600));
    const retry = await launch({ user: 'alice' }, 'evt-f');
    expect(retry.deduplicated).toBe(false);
    expect(store.listRuns().map((r) => r.id)).toEqual([retry.runId]);
    expect(store.getLaunchKey('w', 'evt-f')).toMatchObject({ runId: retry.runId });
    await store.close();
  });

  it('idempotent launch - the key survives a restart and expires after the retention window', async () => {
    const dir = tmp();
    const clock = { now: Date.UTC(2026, 11, 2) };
    const a = await plane(dir, clock);
    const first = await a.launch({ user: 'alice' }, 'evt-r');
    await a.store.close();
    clock.now += 23 * HOUR;
    const b = await plane(dir, clock);
    expect(await b.launch({ user: 'alice' }, 'evt-r')).toMatchObject({ runId: first.runId, deduplicated: true });
    clock.now += 2 * HOUR;
    const fresh = await b.launch({ user: 'alice' }, 'evt-r');
    expect(fresh.deduplicated).toBe(false);
    expect(fresh.runId).not.toBe(first.runId);
    await b.store.close();
  });

  it('idempotent launch - a first run pruned since still deduplicates, by its id', async () => {
    const clock = { now: Date.UTC(2026, 11, 2) };
    const { store, launch } = await plane(tmp(), clock, { maxRuns: 1 });
    const first = await launch({ user: 'alice' }, 'evt-p');
    // Ended (how does not matter to pruning: only finished runs are pruned).
    Object.assign(first.run!, { status: 'failed', endedMs: clock.now });
    store.putRun(first.run!);
    clock.now += 1000;
    await launch({ user: 'bob' }, 'evt-q');
    await store.flush();
    await launch({ user: 'carol' }, 'evt-s');
    await store.flush();
    expect(store.getRun(first.runId)).toBeUndefined();
    expect(await launch({ user: 'alice' }, 'evt-p')).toEqual({ runId: first.runId, workflow: 'w', run: undefined, deduplicated: true });
    await store.close();
  });

  it('idempotent launch - a run whose key a torn write lost gets it back at restart', async () => {
    const dir = tmp();
    const clock = { now: Date.UTC(2026, 11, 2) };
    const a = await plane(dir, clock);
    const first = await a.launch({ user: 'alice' }, 'evt-t');
    a.store.deleteLaunchKey('w', 'evt-t');
    await a.store.close();
    const b = await plane(dir, clock);
    expect(b.store.getLaunchKey('w', 'evt-t')).toMatchObject({ runId: first.runId });
    expect(await b.launch({ user: 'alice' }, 'evt-t')).toMatchObject({ runId: first.runId, deduplicated: true });
    await b.store.close();
  });
});
