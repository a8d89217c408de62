/** The webhook signature check (control-plane/triggers/signature.ts) and the event mapping (triggers/mapping.ts), pure. */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { mapEvent } from '../../control-plane/triggers/mapping.js';
import { signatureHeader, verifySignature } from '../../control-plane/triggers/signature.js';

const SECRET = 'whsec_test';
const NOW = Date.UTC(2026, 11, 2, 10, 0, 0);
const T = NOW / 1000;
const BODY = Buffer.from('{"event_id":"e1","user":{"login":"alice"}}');
const TOL = 300_000;
// The scheme as a sender computes it, independently of sign(): HMAC-SHA256 over "<t>.<body>".
const hmac = (secret: string, t: number, body: Buffer) => createHmac('sha256', secret).update(Buffer.concat([Buffer.from(`${t}.`), body])).digest('hex');

describe('webhook signature', () => {
  it('webhook signature - a good signature passes, with a replay id of t and body', () => {
    const v = verifySignature(`t=${T},v1=${hmac(SECRET, T, BODY)}`, BODY, SECRET, NOW, TOL);
    expect(v).toMatchObject({ ok: true, t: T });
    expect(signatureHeader(SECRET, T, BODY)).toBe(`t=${T},v1=${hmac(SECRET, T, BODY)}`);
    const again = verifySignature(`v1=${hmac(SECRET, T, BODY)}, t=${T}`, BODY, SECRET, NOW, TOL);
    expect(again.ok && v.ok && again.replayId === v.replayId).toBe(true);
  });

  it('webhook signature - several v1 entries (rotation): one match is enough; other schemes are ignored', () => {
    const header = `t=${T},v0=abc,v1=${hmac('old-secret', T, BODY)},v1=${hmac(SECRET, T, BODY)}`;
    expect(verifySignature(header, BODY, SECRET, NOW, TOL).ok).toBe(true);
  });

  it('webhook signature - a wrong secret, a changed body or a changed t is a mismatch', () => {
    for (const header of [`t=${T},v1=${hmac('other', T, BODY)}`, `t=${T},v1=${hmac(SECRET, T, Buffer.from('{}'))}`, `t=${T - 1},v1=${hmac(SECRET, T, BODY)}`]) {
      expect(verifySignature(header, BODY, SECRET, NOW, TOL)).toEqual({
        ok: false,
        reason: 'mismatch',
        message: "no v1= signature matches the body with the hook's secret",
        hint: expect.stringContaining('HMAC-SHA256'),
      });
    }
  });

  it('webhook signature - stale and future timestamps are refused with how far off they are', () => {
    const old = T - 301;
    expect(verifySignature(`t=${old},v1=${hmac(SECRET, old, BODY)}`, BODY, SECRET, NOW, TOL)).toMatchObject({ ok: false, reason: 'stale', message: `the signature's timestamp t=${old} is 301 s old; at most 300 s are accepted` });
    const ahead = T + 400;
    expect(verifySignature(`t=${ahead},v1=${hmac(SECRET, ahead, BODY)}`, BODY, SECRET, NOW, TOL)).toMatchObject({ reason: 'stale', message: expect.stringContaining('400 s in the future') });
    expect(verifySignature(`t=${T - 299},v1=${hmac(SECRET, T - 299, BODY)}`, BODY, SECRET, NOW, TOL).ok).toBe(true);
    // Exact to the millisecond, not rounded to seconds: 300.4 s is past a 300 s tolerance (a replay's memory ends at t + 300 s).
    expect(verifySignature(`t=${T - 300},v1=${hmac(SECRET, T - 300, BODY)}`, BODY, SECRET, NOW + 400, TOL)).toMatchObject({ reason: 'stale', message: `the signature's timestamp t=${T - 300} is 300.4 s old; at most 300 s are accepted` });
    expect(verifySignature(`t=${T - 300},v1=${hmac(SECRET, T - 300, BODY)}`, BODY, SECRET, NOW, TOL).ok).toBe(true);
  });

  it('webhook signature - missing and malformed headers say what is wrong', () => {
    const why = (h: string | undefined) => {
      const v = verifySignature(h, BODY, SECRET, NOW, TOL);
      return v.ok ? 'ok' : `${v.reason}: ${v.message}`;
    };
    expect(why(undefined)).toBe('missing: the request carries no X-Drover-Signature header');
    expect(why(`v1=${hmac(SECRET, T, BODY)}`)).toBe('malformed: the X-Drover-Signature header is malformed: it has no t=<unix seconds>');
    expect(why(`t=${T}`)).toBe('malformed: the X-Drover-Signature header is malformed: it has no v1=<hex HMAC-SHA256> entry');
    expect(why(`t=${T},v1=zz`)).toBe('malformed: the X-Drover-Signature header is malformed: a v1= entry must be 64 hex digits (an HMAC-SHA256)');
    expect(why(`t=1.5,v1=${hmac(SECRET, T, BODY)}`)).toBe('malformed: the X-Drover-Signature header is malformed: t= must appear once, as whole unix seconds');
    expect(why(`t=${T},t=${T},v1=${hmac(SECRET, T, BODY)}`)).toMatch(/t= must appear once/);
    expect(why(`t=${T},${Array(9).fill(`v1=${'0'.repeat(64)}`).join(',')}`)).toMatch(/more than 8 v1= entries/);
  });
});

describe('event mapping', () => {
  const trigger = { params: { username: 'body.user.login', role: 'body.user.role', groups: 'body.groups', n: 'body.count', agent: 'headers["user-agent"]' }, idempotencyKey: 'body.event_id' };

  it('event mapping - values become wire params: strings, numbers, booleans, lists as JSON; headers are lower-case', () => {
    const m = mapEvent(trigger, { body: { event_id: 42, user: { login: 'alice', role: 'sales' }, groups: ['a', 'b'], count: 3 }, headers: { 'user-agent': 'hr/1' } });
    expect(m).toEqual({ params: { username: 'alice', role: 'sales', groups: '["a","b"]', n: '3', agent: 'hr/1' }, notes: {}, idempotencyKey: '42' });
  });

  it('event mapping - a field that is not there leaves its param out, with a note; objects are not values', () => {
    const m = mapEvent(trigger, { body: { event_id: 'e', user: { login: { first: 'a' } } }, headers: {} });
    expect(m.params).toEqual({});
    expect(m.notes).toEqual({
      username: 'body.user.login: it is an object, not a value',
      role: 'body.user.role: No such key: role',
      groups: 'body.groups: No such key: groups',
      n: 'body.count: No such key: count',
      agent: 'headers["user-agent"]: No such key: user-agent',
    });
  });

  it('event mapping - an idempotency key the body does not give is a problem; NATS mappings see the subject', () => {
    expect(mapEvent(trigger, { body: {}, headers: {} }).keyProblem).toBe("the trigger's idempotencyKey body.event_id: No such key: event_id");
    expect(mapEvent(trigger, { body: { event_id: '' }, headers: {} }).keyProblem).toBe("the trigger's idempotencyKey body.event_id: it is empty");
    expect(mapEvent({ params: { site: 'subject.split(".")[1]', level: 'body.level' }, idempotencyKey: '' }, { body: { level: 'high' }, subject: 'alarms.hq' }).params).toMatchObject({ level: 'high' });
    expect(mapEvent({ params: { s: 'subject' }, idempotencyKey: '' }, { body: {}, subject: 'alarms.hq' }).params).toEqual({ s: 'alarms.hq' });
  });
});
