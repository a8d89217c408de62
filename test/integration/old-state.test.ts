/**
 * State written by an older build keeps working (docs/reliability.md): the
 * current `drover server` and `drover agent` start on copies of the data dir
 * and agent state dirs that scripts/fixtures/make-old-state.ts wrote with
 * commit 633d714, and the CLI shows what that build showed before it stopped.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { chmodSync, cpSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { FixtureManifest } from '../../scripts/fixtures/make-old-state.js';
import { cli, startAgent, startServer, tempDir, waitFor, type AgentProc, type ServerProc } from '../helpers/cluster.js';

const FIXTURE = resolve(import.meta.dirname, '../fixtures/state-633d714');
const manifest = JSON.parse(readFileSync(join(FIXTURE, 'manifest.json'), 'utf8')) as FixtureManifest;
const LOST = 'lost: the agent stopped while this attempt ran';

interface Attempt {
  number: number;
  id: string;
  status: string;
  startedAt: number;
  endedAt: number;
  message: string;
}
interface Step {
  id: string;
  agent: string;
  status: string;
  attempt: number;
  outputs: Record<string, string>;
  message: string;
  attempts: Attempt[];
}
interface Run {
  id: string;
  status: string;
  message: string;
  steps: Step[];
}

/** sha256 of every file under `dir`: the fixture must read the same after the test. */
function digest(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const rel of readdirSync(dir, { recursive: true }) as string[]) {
    const p = join(dir, rel);
    if (statSync(p).isFile()) out[rel] = createHash('sha256').update(readFileSync(p)).digest('hex');
  }
  return out;
}
const untouched = digest(FIXTURE);

/** Copies the data dir and state dirs to a temp dir, with what git does not keep: file modes (keys 0600) and empty folders. */
function copyFixture(): string {
  const dir = tempDir('drover-old-state-');
  for (const part of ['server', 'agents']) cpSync(join(FIXTURE, part), join(dir, part), { recursive: true });
  for (const [path, mode] of Object.entries(manifest.modes)) {
    if (path.endsWith('/')) mkdirSync(join(dir, path), { recursive: true });
    chmodSync(join(dir, path), parseInt(mode, 8));
  }
  return dir;
}

/** The fixture's certificates are long-lived (agents 3000 days, CA ten years), not eternal. */
function checkNotExpired() {
  const files = ['server/ca.pem', ...Object.keys(manifest.agents).map((a) => `agents/${a}/identity/agent.pem`)];
  for (const f of files) {
    const pem = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/.exec(readFileSync(join(FIXTURE, f), 'utf8'))![0];
    const until = Date.parse(new X509Certificate(pem).validTo);
    if (Date.now() > until - 86_400_000) {
      throw new Error(`the fixture certificate ${f} expires ${new Date(until).toISOString()}: regenerate the fixture (npx tsx scripts/fixtures/make-old-state.ts, docs/reliability.md)`);
    }
  }
}

let server: ServerProc;
let agents: Record<string, AgentProc>;

async function json<T>(args: string[], on: ServerProc = server, env: Record<string, string> = {}): Promise<T> {
  const res = await cli([...args, '-o', 'json'], { ...on.env, ...env });
  if (res.code !== 0) throw new Error(`drover ${args.join(' ')} exited ${res.code}: ${res.stderr}`);
  // Tokens and secrets carry Dates in the SDK, printed as ISO-8601 before and now.
  return (args[0] === 'token' || args[0] === 'secret' ? JSON.parse(res.stdout) : JSON.parse(res.stdout, msTimes)) as T;
}

/** `-o json` prints times as ISO-8601 (null for never); the snapshots hold the SDK's ms numbers of runs, agents, devices and workflows. */
function msTimes(key: string, value: unknown): unknown {
  if (!['createdAt', 'startedAt', 'endedAt', 'lastSeen', 'connectedSince', 'at'].includes(key)) return value;
  return value === null ? 0 : typeof value === 'string' ? Date.parse(value) : value;
}

async function logs(id: string): Promise<{ stdout: string; stderr: string }> {
  const res = await cli(['logs', id], server.env);
  expect(res.code).toBe(0);
  return { stdout: res.stdout, stderr: res.stderr };
}

const step = (run: Run, id: string) => run.steps.find((s) => s.id === id)!;
const snapshot = (key: keyof FixtureManifest['runs']) => manifest.snapshots[manifest.runs[key]] as { status: Run; logs: { stdout: string; stderr: string } };
const FINISHED = ['finished', 'retried', 'fanout', 'registered'] as const;

async function ended(id: string): Promise<Run> {
  return waitFor(
    async () => {
      const run = await json<Run>(['status', id]);
      return ['succeeded', 'failed', 'cancelled'].includes(run.status) && run;
    },
    30_000,
    () => `run ${id} to end`,
  );
}

beforeAll(async () => {
  checkNotExpired();
  const dir = copyFixture();
  server = await startServer({ dataDir: join(dir, 'server') });
  agents = Object.fromEntries(Object.entries(manifest.agents).map(([name, labels]) => [name, startAgent(server, name, labels, join(dir, 'agents', name))]));
  await waitFor(async () => (await json<{ state: string }[]>(['fleet'])).filter((a) => a.state === 'connected').length === 2, 20_000, () => 'both fixture agents to reconnect');
});

describe(`old state - a data dir and agent state dirs written by ${manifest.commit}`, () => {
  it('old state - every finished run, step, attempt and log line reads back unchanged', async () => {
    // Each CLI call is a process: in parallel, so a loaded machine stays inside the timeout.
    // Each CLI call is a process of its own: in parallel, so a loaded machine stays inside the timeout.
    const [listed, statuses, lines] = await Promise.all([
      json<Run[]>(['runs', '--limit', '100']),
      Promise.all(FINISHED.map((key) => json<Run>(['status', manifest.runs[key]]))),
      Promise.all(FINISHED.map((key) => logs(manifest.runs[key]))),
    ]);
    expect(listed.map((r) => r.id).sort()).toEqual(Object.values(manifest.runs).sort());
    // Every field the old build printed reads back the same; fields added since (stepCounts, waiting) are extra.
    FINISHED.forEach((key, i) => {
      expect(statuses[i]).toMatchObject(snapshot(key).status);
      expect(listed.find((r) => r.id === manifest.runs[key])).toMatchObject(snapshot(key).status);
      expect(lines[i]).toEqual(snapshot(key).logs);
    });
    // What the snapshots hold, spelled out.
    expect(snapshot('finished').logs.stderr).toBe('hello | hello warning\nanswer | answer note\n');
    expect(step(snapshot('finished').status, 'hello').outputs).toEqual({ greeting: 'hi-from-edge-1' });
    expect(step(snapshot('retried').status, 'flaky').attempts.map((a) => [a.number, a.status, a.message])).toEqual([
      [1, 'failed', 'attempt 1 of 2 exited with code 3; retrying in 0.1s'],
      [2, 'failed', 'exited with code 3'],
    ]);
    expect(snapshot('fanout').status.steps.map((s) => [s.id, s.status])).toEqual([
      ['each', 'succeeded'],
      ['each[edge-1]', 'succeeded'],
      ['each[edge-2]', 'succeeded'],
    ]);
  });

  it('old state - the workflow registry, devices, secrets, tokens and audit chain are kept', async () => {
    const { lists } = manifest;
    const [workflows, registered, devices, secrets, tokens, audit, verify, viewer, fleet] = await Promise.all([
      json(['workflow', 'list']),
      json(['workflow', 'show', 'fixture-registered']),
      json(['device', 'list']),
      json(['secret', 'list']),
      json<{ id: string }[]>(['token', 'list']),
      json<unknown[]>(['audit']),
      cli(['audit', 'verify'], server.env),
      // A token the old build issued still signs in, with its role.
      json(['whoami'], server, { DROVER_TOKEN: manifest.viewerToken }),
      json<{ name: string; labels: Record<string, string> }[]>(['fleet']),
    ]);
    expect(workflows).toEqual(lists.workflows);
    expect(registered).toEqual(lists.registered);
    expect(devices).toEqual(lists.devices);
    expect(secrets).toEqual(lists.secrets);
    const oldTokens = lists.tokens as { id: string }[];
    // Tokens made before token names existed list with an empty name.
    expect(tokens.filter((t) => oldTokens.some((o) => o.id === t.id))).toEqual(oldTokens.map((o) => ({ name: '', ...o })));
    // The new server appended to the old chain (the helper made an enrollment token).
    const oldAudit = lists.audit as unknown[];
    expect(audit.length).toBeGreaterThan(oldAudit.length);
    expect(audit.slice(0, oldAudit.length)).toEqual(oldAudit);
    expect(verify.code, verify.stderr).toBe(0);
    expect(viewer).toMatchObject({ role: 'viewer' });
    expect(Object.fromEntries(fleet.map((a) => [a.name, a.labels]))).toEqual(manifest.agents);
  });

  it('old state - the run whose supervisor died with its host is carried on: attempt 1 is lost and retried, attempt 2 and the dependent step succeed', async () => {
    const old = snapshot('interrupted');
    const id = old.status.id;
    expect(old.status.status).toBe('running');
    expect(old.logs.stdout).toBe(`long | long started ${id}/long/1/edge-1\n`);
    const run = await ended(id);
    expect(run).toMatchObject({ status: 'succeeded', message: '' });
    expect(agents['edge-1'].output()).toContain('gone without an exit status; reporting it lost');
    const long = step(run, 'long');
    expect(long).toMatchObject({ status: 'succeeded', agent: 'edge-1', attempt: 2, outputs: { phase: 'done' } });
    const [first] = step(old.status, 'long').attempts;
    expect(long.attempts).toEqual([
      { ...first, status: 'failed', endedAt: expect.any(Number), message: `attempt 1 of 2 ${LOST}; retrying in 0.1s` },
      expect.objectContaining({ number: 2, id: `${id}/long/2/edge-1`, status: 'succeeded', exitCode: 0 }),
    ]);
    expect(long.attempts[0].endedAt).toBeGreaterThan(first.startedAt);
    expect(step(run, 'after')).toMatchObject({ status: 'succeeded', agent: 'edge-2', attempt: 1 });
    expect(await logs(id)).toEqual({
      stdout: `long #1 edge-1 | long started ${id}/long/1/edge-1\nlong #2 edge-1 | long started ${id}/long/2/edge-1\nlong #2 edge-1 | long finished ${id}/long/2/edge-1\nafter | after saw done\n`,
      stderr: '',
    });
  });

  it('old state - the built-in sleep that stopped with its agent is lost and, with no retry, fails its run', async () => {
    const old = snapshot('interruptedBuiltin');
    expect(old.status.status).toBe('running');
    const run = await ended(old.status.id);
    expect(run).toMatchObject({ status: 'failed', message: `step nap failed: ${LOST}` });
    const nap = step(run, 'nap');
    expect(nap).toMatchObject({ status: 'failed', agent: 'edge-2', attempt: 1, message: LOST });
    const [first] = step(old.status, 'nap').attempts;
    expect(nap.attempts).toEqual([{ ...first, status: 'failed', endedAt: expect.any(Number), message: LOST }]);
  });

  it('old state - a new run of the registered workflow succeeds with the secret the old build stored', async () => {
    const { id } = await json<{ id: string }>(['run', 'fixture-registered', '-p', 'who=new-build']);
    const run = await ended(id);
    expect(run.status).toBe('succeeded');
    expect(await logs(id)).toEqual({ stdout: `greet | v2 greets new-build\ngreet | secret sha256 ${manifest.secret.sha256}\n`, stderr: '' });
  });

  it("old state - the previous generation's change log replays to the same runs when state.json is unreadable", async () => {
    const dir = copyFixture();
    writeFileSync(join(dir, 'server/state.json'), '{');
    const replay = await startServer({ dataDir: join(dir, 'server') });
    expect(replay.output()).toContain('was not valid JSON');
    const [runs, registered] = await Promise.all([json<Run[]>(['runs', '--limit', '100'], replay), json(['workflow', 'show', 'fixture-registered'], replay)]);
    expect(Object.fromEntries(runs.map((r) => [r.id, r]))).toMatchObject(Object.fromEntries(Object.entries(manifest.snapshots).map(([id, s]) => [id, s.status])));
    expect(registered).toEqual(manifest.lists.registered);
    await replay.stop();
  });

  it('old state - the fixture itself is not modified', () => {
    expect(digest(FIXTURE)).toEqual(untouched);
  });
});
