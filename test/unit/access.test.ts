import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { ControlVerifier } from '../../agent/control.js';
import { DESCRIPTOR } from '../../proto/gen/descriptor.js';
import { checkCall, FailureThrottle, peerAddress, RPC_RULES, type AccessOptions } from '../../control-plane/security/access.js';
import { ControlSigner, isControl } from '../../control-plane/security/signer.js';
import { globToRegExp, roleAllows, TokenError, Tokens } from '../../control-plane/security/tokens.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';

/** Every RPC of every service in the contract, as `/drover.v1.Service/Method`. */
function allMethods(): string[] {
  const v1 = (DESCRIPTOR as unknown as { nested: { drover: { nested: { v1: { nested: Record<string, { methods?: Record<string, unknown> }> } } } } }).nested.drover.nested.v1.nested;
  return Object.entries(v1).flatMap(([service, def]) => Object.keys(def.methods ?? {}).map((m) => `/drover.v1.${service}/${m}`));
}

function setup(now = () => 1_000_000) {
  const store = new MemoryStore();
  const tokens = new Tokens(store, 'ab'.repeat(32), now);
  const o: AccessOptions = { tokens, throttle: new FailureThrottle(now), adminTokenFile: '/data/admin.token', insecure: false };
  return { store, tokens, o };
}

function md(token?: string): grpc.Metadata {
  const m = new grpc.Metadata();
  if (token !== undefined) m.set('authorization', `Bearer ${token}`);
  return m;
}

describe('access', () => {
  it('access - every method of every service in the contract has a rule, and no rule names a method that does not exist', () => {
    const methods = allMethods();
    expect(methods.length).toBeGreaterThanOrEqual(28);
    expect(methods.filter((m) => !(m in RPC_RULES))).toEqual([]);
    expect(Object.keys(RPC_RULES).filter((m) => !methods.includes(m))).toEqual([]);
  });

  it('access - a call with no token, a malformed, unknown, expired or revoked token is UNAUTHENTICATED naming why', () => {
    let t = 1_000_000;
    const { tokens, o } = setup(() => t);
    const expiring = tokens.create({ kind: 'api', role: 'admin', ttlMs: 1000 }).token;
    const revoked = tokens.create({ kind: 'api', role: 'admin' });
    tokens.revoke(revoked.record.id);
    const path = '/drover.v1.RunService/SubmitRun';
    const cases: [string | undefined, RegExp][] = [
      [undefined, /SubmitRun needs an API token with the operator role; none was sent/],
      ['nonsense', /not a drover API token/],
      [`drover-api.${revoked.record.id}.wrongsecret`, /not known to this control plane/],
      [revoked.token, /was revoked at/],
      [`drover-enroll.${'ab'.repeat(32)}.x.y`, /that is an enrollment token/],
    ];
    for (const [token, why] of cases) {
      const v = checkCall(o, path, md(token), null)!;
      expect(v.code, String(token)).toBe(grpc.status.UNAUTHENTICATED);
      expect(v.details).toMatch(why);
    }
    expect(checkCall(o, path, md(expiring), null)).toBeUndefined();
    t += 1000;
    expect(checkCall(o, path, md(expiring), null)!.details).toMatch(/expired at/);
  });

  it('access - roles include the ones below them and nothing above; a wrong role is PERMISSION_DENIED with the role needed', () => {
    const { tokens, o } = setup();
    const viewer = tokens.create({ kind: 'api', role: 'viewer' }).token;
    const operator = tokens.create({ kind: 'api', role: 'operator' }).token;
    expect(checkCall(o, '/drover.v1.FleetService/ListAgents', md(viewer), null)).toBeUndefined();
    const denied = checkCall(o, '/drover.v1.RunService/SubmitRun', md(viewer), null)!;
    expect(denied.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(denied.details).toMatch(/SubmitRun needs the operator role; token \w+ has viewer/);
    expect(checkCall(o, '/drover.v1.RunService/SubmitRun', md(operator), null)).toBeUndefined();
    expect(checkCall(o, '/drover.v1.AccessService/CreateToken', md(operator), null)!.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(roleAllows('admin', 'viewer')).toBe(true);
    expect(roleAllows('viewer', 'admin')).toBe(false);
  });

  it('access - an unknown method is refused; Connect needs a client certificate; Enroll needs none', () => {
    const { o } = setup();
    expect(checkCall(o, '/drover.v1.Nope/Nope', md(), null)!.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(checkCall(o, '/drover.v1.AgentService/Connect', md(), null)!.details).toMatch(/client certificate they got at enrollment; none was presented/);
    expect(checkCall(o, '/drover.v1.AgentService/Enroll', md(), null)).toBeUndefined();
  });

  it('access - tokens are stored as hashes only; enrollment tokens carry the CA hash and count their uses', () => {
    const { store, tokens } = setup();
    const { token, record } = tokens.create({ kind: 'enroll', uses: 1, namePattern: 'web-*' });
    expect(token.split('.')).toHaveLength(4);
    expect(token.split('.')[1]).toBe('ab'.repeat(32));
    expect(JSON.stringify(store.listTokens())).not.toContain(token.split('.')[3]);
    const rec = tokens.check(token, 'enroll');
    tokens.use(rec, true);
    expect(() => tokens.check(token, 'enroll')).toThrow(TokenError);
    expect(() => tokens.check(token, 'enroll')).toThrow(/is used up/);
    expect(record.expiresMs).toBe(1_000_000 + 3_600_000);
    expect(globToRegExp('web-*').test('web-12')).toBe(true);
    expect(globToRegExp('web-*').test('db-1')).toBe(false);
    expect(globToRegExp('a.b').test('axb')).toBe(false);
  });

  it('access - repeated failures from one peer slow its answers, bounded in time and memory, and are forgotten after a while', () => {
    let t = 0;
    const th = new FailureThrottle(() => t);
    for (let i = 0; i < 5; i++) th.failed('1.2.3.4');
    expect(th.delayMs('1.2.3.4')).toBe(0);
    th.failed('1.2.3.4');
    expect(th.delayMs('1.2.3.4')).toBe(100);
    for (let i = 0; i < 30; i++) th.failed('1.2.3.4');
    expect(th.delayMs('1.2.3.4')).toBe(5000);
    expect(th.delayMs('5.6.7.8')).toBe(0);
    for (let i = 0; i < 10_050; i++) th.failed(`10.0.${i >> 8}.${i & 255}`);
    expect(th.size).toBeLessThanOrEqual(10_000);
    t = 11 * 60_000;
    th.failed('9.9.9.9');
    expect(th.delayMs('10.0.39.255')).toBe(0);
    expect(peerAddress('ipv4:127.0.0.1:5555')).toBe('127.0.0.1');
    expect(peerAddress('ipv6:[::1]:5555')).toBe('::1');
  });
});

describe('signed control messages', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');

  it('control - a signed Assign for this agent is accepted once; replayed, for another agent, unsigned or with another key it is refused', async () => {
    const signer = new ControlSigner(privateKey, () => 1_700_000_000_000);
    const verifier = new ControlVerifier('web-1', publicKey, undefined);
    const sealed = await signer.seal('web-1', { assign: { runId: 'r1', workflow: 'w' } });
    expect(sealed.signed).toBeDefined();
    const decoded = { body: 'signed', signed: sealed.signed } as never;
    const ok = verifier.check(decoded);
    expect(ok.ok && ok.message.body).toBe('assign');
    expect(ok.ok && ok.message.assign?.runId).toBe('r1');
    const again = verifier.check(decoded);
    expect(again).toMatchObject({ ok: false, why: expect.stringMatching(/replayed control message/) });
    const other = verifier.check({ body: 'signed', signed: (await signer.seal('web-2', { cancel: { runId: 'r1' } })).signed } as never);
    expect(other).toMatchObject({ ok: false, why: 'a control message for agent "web-2"' });
    expect(verifier.check({ body: 'assign', assign: { runId: 'r2' } } as never)).toMatchObject({ ok: false, why: expect.stringMatching(/unsigned assign/) });
    const stranger = new ControlSigner(generateKeyPairSync('ed25519').privateKey, () => 1_800_000_000_000);
    expect(verifier.check({ body: 'signed', signed: (await stranger.seal('web-1', { drain: { enabled: true } })).signed } as never)).toMatchObject({ ok: false, why: expect.stringMatching(/does not verify/) });
    const tampered = (await signer.seal('web-1', { cancel: { runId: 'r9' } })).signed!;
    const payload = Buffer.from(tampered.payload as Uint8Array);
    payload[payload.length - 1] ^= 1;
    expect(verifier.check({ body: 'signed', signed: { ...tampered, payload } } as never).ok).toBe(false);
    expect(verifier.rejected).toBe(5);
  });

  it('control - welcome, ack and reject need no signature; a restarted control plane keeps counting upwards', async () => {
    const verifier = new ControlVerifier('a', publicKey, undefined);
    expect(verifier.check({ body: 'ack', ack: { seq: 3 } } as never).ok).toBe(true);
    const before = new ControlSigner(privateKey, () => 1_000);
    const first = await before.seal('a', { drain: { enabled: true } });
    const after = new ControlSigner(privateKey, () => 2_000);
    expect(verifier.check({ body: 'signed', signed: first.signed } as never).ok).toBe(true);
    expect(verifier.check({ body: 'signed', signed: (await after.seal('a', { drain: { enabled: false } })).signed } as never).ok).toBe(true);
    expect(isControl({ ack: { seq: 1 } })).toBe(false);
    expect(isControl({ release: { runId: 'r' } })).toBe(true);
  });

  it('control - a leader epoch below the highest accepted is refused as a deposed leader; a new epoch is taken whatever its counter, and both survive an agent restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'drover-epoch-'));
    mkdirSync(join(dir, 'identity'));
    const open = (signed: unknown) => ({ body: 'signed', signed }) as never;
    const v = new ControlVerifier('a', publicKey, dir);
    const old = new ControlSigner(privateKey, () => 5_000, 7);
    expect(v.check(open((await old.seal('a', { drain: { enabled: true } })).signed)).ok).toBe(true);
    // The new leader's clock is behind the old one's: its counter is lower, its epoch decides.
    const next = new ControlSigner(privateKey, () => 1_000, 9);
    const fromNext = await next.seal('a', { assign: { runId: 'r1', workflow: 'w' } });
    expect(v.check(open(fromNext.signed)).ok).toBe(true);
    expect(v.check(open(fromNext.signed))).toMatchObject({ ok: false, why: expect.stringMatching(/replayed control message/) });
    const late = await old.seal('a', { assign: { runId: 'r2', workflow: 'w' } });
    expect(v.check(open(late.signed))).toMatchObject({ ok: false, why: expect.stringMatching(/^a control message from a deposed leader \(epoch 7; a leader at epoch 9 took over since\)/) });
    v.flush();
    expect(readFileSync(join(dir, 'identity', 'control-counter'), 'utf8')).toBe(`${1_000 * 1000 + 1}\n9\n`);
    const restarted = new ControlVerifier('a', publicKey, dir);
    expect(restarted.check(open((await old.seal('a', { cancel: { runId: 'r2' } })).signed)).ok).toBe(false);
    expect(restarted.check(open((await next.seal('a', { cancel: { runId: 'r1' } })).signed)).ok).toBe(true);
    // A file written before epochs holds the counter only: epoch 0, any leader is newer.
    writeFileSync(join(dir, 'identity', 'control-counter'), '42\n');
    expect(new ControlVerifier('a', publicKey, dir).check(open((await old.seal('a', { cancel: { runId: 'r3' } })).signed)).ok).toBe(true);
  });

  it('control - messages sealed in one turn share one signature; each verifies alone, and a path or payload from another does not', async () => {
    const signer = new ControlSigner(privateKey, () => 1_900_000_000_000);
    const names = Array.from({ length: 1001 }, (_, i) => `n-${i}`);
    const sealed = await Promise.all(names.map((n) => signer.seal(n, { assign: { runId: 'big', workflow: n } })));
    expect(new Set(sealed.map((m) => Buffer.from(m.signed!.signature as Uint8Array).toString('hex'))).size).toBe(1);
    expect(sealed[0].signed!.proof).toHaveLength(10);
    for (const [i, n] of names.entries()) {
      const v = new ControlVerifier(n, publicKey, undefined).check({ body: 'signed', signed: sealed[i].signed } as never);
      expect(v.ok && v.message.assign?.workflow, n).toBe(n);
    }
    const a = sealed[3].signed!;
    const b = sealed[4].signed!;
    const v3 = new ControlVerifier('n-3', publicKey, undefined);
    expect(v3.check({ body: 'signed', signed: { ...a, proof: b.proof } } as never).ok).toBe(false);
    expect(v3.check({ body: 'signed', signed: { ...a, index: 4 } } as never).ok).toBe(false);
    expect(v3.check({ body: 'signed', signed: { ...b, index: 3 } } as never)).toMatchObject({ ok: false });
    const alone = await signer.seal('solo', { cancel: { runId: 'x' } });
    expect(alone.signed!.proof).toEqual([]);
    expect(new ControlVerifier('solo', publicKey, undefined).check({ body: 'signed', signed: alone.signed } as never).ok).toBe(true);
  });
});
