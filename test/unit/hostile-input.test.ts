import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Masker } from '../../agent/executor/mask.js';
import { GENESIS, hashLine, recordLine, verifyChain, type ChainRecord } from '../../common/audit-chain.js';
import { SecretBox, SecretKeyError } from '../../control-plane/security/secret-box.js';
import { checkMessage, requestTypes } from '../../proto/limits.js';

describe('limits - the bounds every peer message is checked against', () => {
  const table: [string, string, unknown, RegExp | undefined][] = [
    ['a Hello with 200,000 labels', 'Hello', { name: 'a', labels: Object.fromEntries(Array.from({ length: 200_000 }, (_, i) => [`k${i}`, 'v'])) }, /^labels has 200000 entries; the limit is 64$/],
    ['a label value of 64 bytes', 'Hello', { name: 'a', labels: { role: 'x'.repeat(64) } }, /^labels\["role"\] is 64 bytes; the limit is 63$/],
    ['100,000 disks', 'Hello', { name: 'a', facts: { disks: Array.from({ length: 100_000 }, () => ({ mount: '/' })) } }, /^facts\.disks has 100000 items; the limit is 64$/],
    ['cpuCount -1', 'Hello', { name: 'a', facts: { cpuCount: -1 } }, /^facts\.cpuCount is -1; it must be between 0 and 65536$/],
    ['200,000 running attempts', 'Hello', { name: 'a', runningAttempts: Array.from({ length: 200_000 }, (_, i) => `r/s/${i}`) }, /^runningAttempts has 200000 items; the limit is 4096$/],
    ['a NaN CPU percent', 'Heartbeat', { cpuPercent: NaN }, /^cpuPercent is NaN; it must be a finite number$/],
    ['an infinite memory percent', 'Heartbeat', { memoryPercent: Infinity }, /^memoryPercent is Infinity; it must be a finite number$/],
    ['-2^63 bytes', 'Heartbeat', { memoryUsedBytes: -9223372036854775808 }, /^memoryUsedBytes is -9223372036854776000; it must be a whole number below 2\^53$/],
    ['a percent of 101', 'Heartbeat', { diskPercent: 101 }, /^diskPercent is 101; it must be between 0 and 100$/],
    ['an unknown run status', 'ListRunsRequest', { status: 99 }, /^status is 99, which is not a known value; use one of RUN_STATUS_UNSPECIFIED, RUN_STATUS_PENDING/],
    ['a 2 MiB workflow', 'SubmitRunRequest', { source: 'x'.repeat(2 * 1024 * 1024) }, /^source is 2097152 bytes; the limit is 1048576$/],
    ['a negative exit code (allowed)', 'StepEvent', { exitCode: -1, phase: 'STEP_PHASE_FAILED' }, undefined],
    ['an ordinary heartbeat', 'Heartbeat', { atMs: Date.now(), cpuPercent: 12.5, memoryPercent: 40, load: [0.5, 0.4, 0.3], runningSteps: 2 }, undefined],
    ['a step event nested in an agent message', 'AgentMessage', { seq: 3, stepEvent: { runId: 'r', attempt: 1001 } }, /^stepEvent\.attempt is 1001; it must be between 0 and 1000$/],
  ];
  for (const [what, type, value, want] of table) {
    it(`limits - ${what}`, () => {
      const v = checkMessage(type, value);
      if (!want) expect(v).toBeUndefined();
      else expect(v?.message).toMatch(want);
    });
  }

  it('limits - every RPC has a request type the check knows', () => {
    const types = requestTypes();
    expect(types.size).toBeGreaterThan(30);
    for (const [, t] of types) expect(checkMessage(t, {})).toBeUndefined();
  });
});

describe('mask - secret values in what a step produces', () => {
  const secret = 'p@ss word/9';
  const m = new Masker([secret, 'one-line\nsecond-line', 'ab']);

  it('mask - the value, its base64, URL-encoded forms and each line of a multi-line value; values under 3 characters are left', () => {
    const text = [secret, Buffer.from(secret).toString('base64'), Buffer.from(secret).toString('base64url'), encodeURIComponent(secret), encodeURIComponent(secret).replace(/%20/g, '+'), 'second-line', 'ab'].join(' | ');
    expect(m.text(text)).toBe('*** | *** | *** | *** | *** | *** | ab');
  });

  it('mask - a value split across two chunks of a stream is masked; a line end flushes everything', () => {
    const out: string[] = [];
    const s = m.stream((b) => out.push(b.toString()));
    s.push(Buffer.from('before p@ss'));
    s.push(Buffer.from(' word/9 after\n'));
    s.push(Buffer.from('tail without newline p@ss wo'));
    s.end();
    expect(out.join('')).toBe('before *** after\ntail without newline p@ss wo');
    expect(out.join('')).not.toContain(secret);
  });
});

describe('audit chain - tamper evidence', () => {
  const rec = (seq: number, prev: string, result = 'ok'): ChainRecord => ({ seq, time: '2026-12-01T00:00:00.000Z', actor: { kind: 'token', id: 't1' }, action: 'RunService/SubmitRun', target: 'wf', from: '127.0.0.1', result, prev });
  const chain = (n: number) => {
    const lines: string[] = [];
    let prev = GENESIS;
    for (let i = 1; i <= n; i++) {
      const l = recordLine(rec(i, prev));
      lines.push(l);
      prev = hashLine(l);
    }
    return lines;
  };

  it('audit chain - an intact log verifies; an edited, a deleted middle and a deleted last record are each named', () => {
    const lines = chain(5);
    const head = { seq: 5, hash: hashLine(lines[4]) };
    expect(verifyChain(`${lines.join('\n')}\n`, head)).toEqual({ records: 5, problems: [] });
    const edited = [...lines];
    edited[2] = edited[2].replace('"ok"', '"DENIED"');
    expect(verifyChain(`${edited.join('\n')}\n`, head).problems).toEqual([{ line: 3, message: 'line 3 (seq 3) was edited: the hash that line 4 carries for it does not match its text' }]);
    const gap = lines.filter((_, i) => i !== 1);
    expect(verifyChain(`${gap.join('\n')}\n`, head).problems.map((p) => p.message)).toContain('line 2 has seq 3 after seq 1: 1 record(s) before it were deleted');
    expect(verifyChain(`${lines.slice(0, 4).join('\n')}\n`, head).problems.map((p) => p.message)).toEqual(['the log ends at seq 4 but the control plane wrote up to seq 5: the last 1 record(s) were deleted']);
    const reformatted = [...lines];
    reformatted[4] = JSON.stringify({ ...JSON.parse(lines[4]), result: 'ok' }, null, 0).replace('"seq":5,', '"seq":5, ');
    expect(verifyChain(`${reformatted.join('\n')}\n`).problems[0].message).toMatch(/line 5 \(seq 5\) was edited/);
  });
});

describe('secret box - sealing at rest', () => {
  it('secret box - a value opens only with its key and its name; the key file is made 0600; DROVER_SECRET_KEY wins and is checked', () => {
    const dir = mkdtempSync(join(tmpdir(), 'drover-box-'));
    const { box, source } = SecretBox.load(dir, {});
    expect(source).toBe(join(dir, 'secret.key'));
    expect(statSync(source).mode & 0o777).toBe(0o600);
    const sealed = box.seal('v@lue', 'secret:A');
    expect(sealed).not.toContain('v@lue');
    expect(box.open(sealed, 'secret:A')).toBe('v@lue');
    expect(() => box.open(sealed, 'secret:B')).toThrow(SecretKeyError);
    const other = SecretBox.load(dir, { DROVER_SECRET_KEY: 'ab'.repeat(32) });
    expect(other.source).toBe('DROVER_SECRET_KEY');
    expect(() => other.box.open(sealed, 'secret:A')).toThrow(/sealed with another secret key/);
    expect(() => SecretBox.load(dir, { DROVER_SECRET_KEY: 'short' })).toThrow(/DROVER_SECRET_KEY is not a 32-byte key .*`openssl rand -hex 32`/);
  });
});

describe('secret params - kept out of the plan', () => {
  it('secret params - no form of forEach, error message or listing of the plan holds the value', async () => {
    const { compile } = await import('../../common/workflow/compiler/compile.js');
    const source = [
      'name: sp',
      'params:',
      '  token: { type: string, secret: true, pattern: "^tok-" }',
      'steps:',
      '  - id: a',
      '    forEach: "${{ [params] }}"',
      '    env: { T: "${{ params.token }}" }',
      '    run: echo "$T"',
    ].join('\n');
    const ok = compile({ source, params: { token: 'tok-S3CRET' }, secrets: [] });
    expect(ok.problems.filter((p) => p.severity === 'error')).toEqual([]);
    expect(ok.secretParams).toEqual({ token: 'tok-S3CRET' });
    expect(JSON.stringify(ok.plan)).not.toContain('S3CRET');
    expect(ok.plan!.params.token).toBe('(secret)');
    expect(ok.plan!.steps[0].secretParams).toEqual(['token']);
    const bad = compile({ source, params: { token: 'S3CRET-no-prefix' }, secrets: [] });
    expect(JSON.stringify(bad.problems)).not.toContain('S3CRET');
    expect(bad.problems[0].message).toBe('param "token" must match /^tok-/, got (the secret value)');
  });
});
