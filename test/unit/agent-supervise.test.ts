/**
 * Process steps under the supervisor (agent/executor/supervise.ts) and their
 * output read back from files (output-tail.ts): the step outlives whoever
 * watched it, is found again by a later watcher, and its output is reported
 * once, from the recorded offsets, masked.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { Ledger } from '../../agent/ledger.js';
import { Masker } from '../../agent/executor/mask.js';
import { AttemptOutput, readOffsets, type Stream } from '../../agent/executor/output-tail.js';
import { ProcStats } from '../../agent/executor/proc-stats.js';
import { attachSupervised, attemptPaths, findSupervised, startSupervised, type AttemptPaths } from '../../agent/executor/supervise.js';

const stats = new ProcStats();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function paths(): AttemptPaths {
  const p = attemptPaths(mkdtempSync(join(tmpdir(), 'drover-sup-')), 'r-1', 'step', 1);
  mkdirSync(p.dir);
  return p;
}

function start(p: AttemptPaths, script: string, timeoutMs = 0, graceMs = 200) {
  return startSupervised({ argv: ['/bin/sh', '-c', script], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, cwd: tmpdir(), timeoutMs, graceMs, paths: p }, stats);
}

function collect(p: AttemptPaths, from = { stdout: 0, stderr: 0 }, masker = new Masker([])) {
  const got: { stream: Stream; text: string; offset: number }[] = [];
  const out = new AttemptOutput(p, from, masker, (stream, data, offset) => got.push({ stream, text: data.toString(), offset }) > 0).follow();
  return { got, out, text: (s: Stream = 'stdout') => got.filter((g) => g.stream === s).map((g) => g.text).join('') };
}

describe('agent - supervised process steps', () => {
  it('runs the step with its output in files and its status in the exit file', async () => {
    const p = paths();
    const sh = start(p, 'echo out; echo err >&2; exit 3');
    const c = collect(p);
    const res = await sh.result;
    c.out.finish();
    expect(res.exitCode).toBe(3);
    expect(readFileSync(p.exit, 'utf8').trim()).toBe('3');
    expect(c.text('stdout')).toBe('out\n');
    expect(c.text('stderr')).toBe('err\n');
    expect(readOffsets(p)).toEqual({ stdout: 4, stderr: 4 });
  });

  it('a step outlives its watcher: found running by pid or by a /proc scan, attached, and its real end reported', async () => {
    const p = paths();
    const first = start(p, 'sleep 0.4; echo late; exit 0');
    // The agent that started it "dies": nobody awaits `first` any more.
    const byPid = findSupervised(p, first.pid);
    expect(byPid).toEqual({ state: 'running', pid: first.pid });
    expect(findSupervised(p)).toEqual({ state: 'running', pid: first.pid });
    const attached = attachSupervised({ argv: [], env: {}, cwd: tmpdir(), timeoutMs: 0, graceMs: 200, startedAtMs: Date.now(), paths: p }, byPid as { state: 'running'; pid: number }, stats);
    const res = await attached.result;
    expect(res.exitCode).toBe(0);
    expect(findSupervised(p, first.pid)).toEqual({ state: 'ended', code: 0 });
    await first.result;
  });

  it('a supervisor that is gone without an exit status is gone; a reused pid is not taken for it', async () => {
    const p = paths();
    const sh = start(p, 'sleep 5');
    await sleep(100);
    // Killed with the machine, or by someone else: no status written (a cancel's SIGTERM would leave one).
    process.kill(-sh.pid, 'SIGKILL');
    await sh.result;
    expect(existsSync(p.exit)).toBe(false);
    expect(findSupervised(p, sh.pid)).toEqual({ state: 'gone' });
    // Our own pid is alive but is not this attempt's supervisor.
    expect(findSupervised(p, process.pid)).toEqual({ state: 'gone' });
  });

  it('cancel and timeout stop the whole group, giving a TERM-trapping step its grace period', async () => {
    const p = paths();
    const sh = start(p, 'trap "echo bye; exit 0" TERM; sleep 10 & wait', 0, 2000);
    const c = collect(p);
    await sleep(200);
    sh.cancel();
    const res = await sh.result;
    c.out.finish();
    expect(res.cancelled).toBe(true);
    // The step got SIGTERM and the time to handle it.
    expect(c.text()).toBe('bye\n');
    const t = paths();
    const timed = await start(t, 'sleep 10', 300, 200).result;
    expect(timed.timedOut).toBe(true);
  });

  it('output: whole lines, a partial line after a quiet spell, and resuming from offsets reports the rest only', async () => {
    const p = paths();
    const sh = start(p, 'printf "a\\nb"; sleep 0.6; printf "c\\nd\\n"');
    const c = collect(p);
    await sleep(450);
    // "b" waited long enough without its line end: sent as it is.
    expect(c.got.map((g) => g.text)).toEqual(['a\n', 'b']);
    const at = c.got[c.got.length - 1].offset;
    c.out.stop();
    // A new watcher (a restarted agent) resumes where the offsets say.
    const again = collect(p, { stdout: at, stderr: 0 });
    await sh.result;
    again.out.finish();
    expect(again.text()).toBe('c\nd\n');
    expect(again.got[again.got.length - 1].offset).toBe(7);
  });

  it('output: a partial line that may end in a secret waits for the rest of it', async () => {
    const p = paths();
    const secret = 'hunter2-Sup3r/S3cret value';
    const sh = start(p, `printf "split: %s" "${secret.slice(0, 8)}"; sleep 0.5; printf "%s\\n" "${secret.slice(8)}"`);
    const c = collect(p, undefined, new Masker([secret]));
    await sleep(400);
    // Past the partial-line wait, but all of it could be the start of the secret: nothing is sent yet.
    expect(c.text()).toBe('');
    await sh.result;
    c.out.finish();
    expect(c.text()).toBe('split: ***\n');
  });

  it('output: a secret is masked even where a 64 KiB read boundary falls inside it', async () => {
    const p = paths();
    const secret = 'hunter2-very-secret';
    const filler = 'x'.repeat(64 * 1024 - 5);
    const payload = join(mkdtempSync(join(tmpdir(), 'drover-payload-')), 'payload');
    writeFileSync(payload, `${filler}${secret}tail\n`);
    const sh = start(p, `cat ${payload}`);
    const c = collect(p, undefined, new Masker([secret]));
    await sh.result;
    c.out.finish();
    expect(c.text()).toBe(`${filler}***tail\n`);
    expect(c.text()).not.toContain('hunter2');
  });

  it('the ledger keeps supervised attempts with their pid across compaction', () => {
    const dir = mkdtempSync(join(tmpdir(), 'drover-ledger-'));
    const file = join(dir, 'ledger.ndjson');
    const a = new Ledger(file);
    a.open();
    a.started('r/s/1/x', { supervised: true, masked: true });
    a.spawned('r/s/1/x', 4242, 1000);
    a.started('r/t/1/x', { supervised: true });
    a.started('r/u/1/x');
    a.ended('r/u/1/x', 'succeeded', {});
    a.close();
    for (let i = 0; i < 2; i++) {
      const b = new Ledger(file);
      const open = b.open();
      b.close();
      expect(open).toEqual([
        { attemptId: 'r/s/1/x', supervised: true, masked: true, pid: 4242, startedAtMs: 1000 },
        { attemptId: 'r/t/1/x', supervised: true },
      ]);
    }
  });

  it('output: a partial line that keeps growing (progress output) is sent as it grows', async () => {
    const p = paths();
    const sh = start(p, 'for i in 1 2 3 4 5 6 7 8; do printf .; sleep 0.1; done; echo');
    const c = collect(p);
    await sh.result;
    c.out.finish();
    expect(c.text()).toBe('........\n');
    // Not one chunk at the end: pieces every PARTIAL_FLUSH_MS while it grew.
    expect(c.got.length).toBeGreaterThanOrEqual(3);
  });

  it('output: a secret longer than a read is masked whole', async () => {
    const p = paths();
    const secret = Buffer.alloc(50_000, 'k').toString() + 'end';
    const b64 = Buffer.from(secret).toString('base64');
    const payload = join(mkdtempSync(join(tmpdir(), 'drover-payload-')), 'payload');
    writeFileSync(payload, `token: ${b64}\n`);
    const sh = start(p, `cat ${payload}`);
    const c = collect(p, undefined, new Masker([secret]));
    await sh.result;
    c.out.finish();
    expect(c.text()).toBe('token: ***\n');
  });

  it('output: a step that truncates its own stdout (> /dev/stdout) is read again from the start', async () => {
    const p = paths();
    const sh = start(p, 'echo line1; echo line2; sleep 0.3; echo again > /dev/stdout; echo line3');
    const c = collect(p);
    await sh.result;
    c.out.finish();
    expect(c.text()).toBe('line1\nline2\nagain\nline3\n');
  });

  it('a cancelled step that traps TERM keeps its supervisor, which writes the real status', async () => {
    const p = paths();
    const sh = start(p, 'trap "exit 7" TERM; sleep 10 & wait', 0, 2000);
    await sleep(200);
    sh.cancel();
    const res = await sh.result;
    expect(res.cancelled).toBe(true);
    expect(res.exitCode).toBe(7);
    expect(readFileSync(p.exit, 'utf8').trim()).toBe('7');
  });

  it('a command step runs the program, never a shell builtin of that name', async () => {
    const p = paths();
    const sh = startSupervised({ argv: ['echo', '-e', 'a\\tb'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, cwd: tmpdir(), timeoutMs: 0, graceMs: 200, paths: p }, stats);
    const c = collect(p);
    await sh.result;
    c.out.finish();
    expect(c.text()).toBe('a\tb\n');
  });
});
