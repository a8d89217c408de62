/**
 * The webhook signature check (Stripe's scheme), pure: the header
 *
 *   X-Drover-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
 *
 * may carry several v1= entries (a sender that rotates its secret signs with
 * the old and the new one); one that matches is enough. The comparison is in
 * constant time; `t` must be within the trigger's tolerance of now, either
 * way, so a captured request cannot be replayed later (and within the window
 * the caller refuses a signature it accepted before: `replayId`).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-drover-signature';
/** More entries than this in one header are refused (a sender rotates between two or three secrets). */
const MAX_SIGNATURES = 8;

export type SignatureVerdict =
  | { ok: true; t: number; replayId: string }
  | { ok: false; reason: 'missing' | 'malformed' | 'stale' | 'mismatch'; message: string; hint: string };

const HINT = 'sign "<t>.<raw body>" with HMAC-SHA256 and the hook\'s secret, and send X-Drover-Signature: t=<unix seconds>,v1=<hex>; see docs/triggers.md';

/** The hex HMAC-SHA256 a sender puts in v1= for `body` at unix time `t` (tests and docs use it too). */
export function sign(secret: string, t: number, body: Buffer | string): string {
  return createHmac('sha256', secret).update(`${t}.`).update(body).digest('hex');
}

/** `t=…,v1=…` for a body signed now: what a sender sends. */
export function signatureHeader(secret: string, t: number, body: Buffer | string): string {
  return `t=${t},v1=${sign(secret, t, body)}`;
}

/** Checks `header` against `body` signed with `secret`, at `nowMs` with `toleranceMs`. */
export function verifySignature(header: string | undefined, body: Buffer, secret: string, nowMs: number, toleranceMs: number): SignatureVerdict {
  if (!header) return { ok: false, reason: 'missing', message: 'the request carries no X-Drover-Signature header', hint: HINT };
  let t: number | undefined;
  const v1: Buffer[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    const [k, v] = eq < 0 ? [part.trim(), ''] : [part.slice(0, eq).trim(), part.slice(eq + 1).trim()];
    if (k === 't') {
      if (!/^\d{1,12}$/.test(v) || t !== undefined) return malformed('t= must appear once, as whole unix seconds');
      t = Number(v);
    } else if (k === 'v1') {
      if (!/^[0-9a-f]{64}$/i.test(v)) return malformed('a v1= entry must be 64 hex digits (an HMAC-SHA256)');
      if (v1.length >= MAX_SIGNATURES) return malformed(`more than ${MAX_SIGNATURES} v1= entries`);
      v1.push(Buffer.from(v, 'hex'));
    }
    // Other schemes (v0=, a future v2=) are ignored, as Stripe's receivers do.
  }
  if (t === undefined) return malformed('it has no t=<unix seconds>');
  if (!v1.length) return malformed('it has no v1=<hex HMAC-SHA256> entry');
  // Exact, not rounded: a replay's memory (webhooks.ts) lasts until t + tolerance, and the window must not outlast it.
  const skewMs = nowMs - t * 1000;
  const off = Math.abs(skewMs);
  const offText = (off / 1000).toFixed(off % 1000 ? 1 : 0);
  if (Math.abs(skewMs) > toleranceMs) {
    return {
      ok: false,
      reason: 'stale',
      message: `the signature's timestamp t=${t} is ${offText} s ${skewMs > 0 ? 'old' : 'in the future'}; at most ${Math.round(toleranceMs / 1000)} s are accepted`,
      hint: "sign each delivery (and each retry) with the current time, and keep the sender's clock in sync (NTP)",
    };
  }
  const expected = Buffer.from(sign(secret, t, body), 'hex');
  // Every entry is compared, matched or not, so timing tells nothing of which one did.
  let matched = false;
  for (const candidate of v1) matched = timingSafeEqual(candidate, expected) || matched;
  if (!matched) return { ok: false, reason: 'mismatch', message: 'no v1= signature matches the body with the hook\'s secret', hint: HINT };
  return { ok: true, t, replayId: createHash('sha256').update(`${t}.`).update(body).digest('hex') };
}

function malformed(why: string): SignatureVerdict {
  return { ok: false, reason: 'malformed', message: `the X-Drover-Signature header is malformed: ${why}`, hint: HINT };
}
