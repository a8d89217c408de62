/**
 * Masking of secret values in what a step produces (log output, outputs,
 * messages), before any of it is journaled, stored in the ledger or sent.
 *
 * Each value is masked in the forms it commonly leaks in: as is, each line of
 * a multi-line value, base64 (padded, unpadded, URL-safe) and URL-encoded
 * (%20 and + for spaces). Output streams are masked across chunk boundaries:
 * a chunk that does not end a line holds back its last bytes (fewer than the
 * longest form) until the next chunk or the end of the stream.
 */

/** Values (and forms) shorter than this are not masked: masking every "a" would garble the log and hide nothing. */
export const MIN_MASKED_LENGTH = 3;
export const MASK = '***';

/** The byte strings to replace for these values, longest first (so a line of a value never splits the whole value's mask). */
export function maskForms(values: Iterable<string>): Buffer[] {
  const forms = new Set<string>();
  for (const v of values) {
    if (!v) continue;
    const add = (f: string) => f.length >= MIN_MASKED_LENGTH && forms.add(f);
    add(v);
    for (const line of v.split(/\r?\n/)) add(line.trim());
    const b64 = Buffer.from(v).toString('base64');
    add(b64);
    add(b64.replace(/=+$/, ''));
    add(Buffer.from(v).toString('base64url'));
    add(encodeURIComponent(v));
    add(encodeURIComponent(v).replace(/%20/g, '+'));
  }
  return [...forms].map((f) => Buffer.from(f)).sort((a, b) => b.length - a.length);
}

function replaceAll(buf: Buffer, form: Buffer, mask: Buffer): Buffer {
  let at = buf.indexOf(form);
  if (at < 0) return buf;
  const parts: Buffer[] = [];
  let from = 0;
  while (at >= 0) {
    parts.push(buf.subarray(from, at), mask);
    from = at + form.length;
    at = buf.indexOf(form, from);
  }
  parts.push(buf.subarray(from));
  return Buffer.concat(parts);
}

export class Masker {
  private readonly forms: Buffer[];
  private readonly mask = Buffer.from(MASK);
  /** Bytes a stream holds back at a chunk boundary: one less than the longest form. */
  readonly holdBack: number;

  constructor(values: Iterable<string>) {
    this.forms = maskForms(values);
    this.holdBack = this.forms.length ? this.forms[0].length - 1 : 0;
  }

  get empty(): boolean {
    return this.forms.length === 0;
  }

  bytes(buf: Buffer): Buffer {
    let out = buf;
    for (const f of this.forms) out = replaceAll(out, f, this.mask);
    return out;
  }

  text(s: string): string {
    return this.empty || !s ? s : this.bytes(Buffer.from(s)).toString('utf8');
  }

  /** Every value of a string map, masked. */
  values(m: Record<string, string>): Record<string, string> {
    if (this.empty) return m;
    return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, this.text(v)]));
  }

  /**
   * The largest cut at or before `at` that no masked form straddles: the
   * bytes before it can be masked on their own (output read from a file is
   * cut there, and the rest read again with what follows).
   */
  safeCut(buf: Buffer, at: number): number {
    let cut = at;
    for (let moved = true; moved; ) {
      moved = false;
      for (const f of this.forms) {
        const i = buf.indexOf(f, Math.max(0, cut - f.length + 1));
        if (i >= 0 && i < cut) {
          cut = i;
          moved = true;
        }
      }
    }
    return cut;
  }

  /** A masking filter for one output stream: `emit` gets masked chunks; call end() when the stream ends. */
  stream(emit: (chunk: Buffer) => void): { push(chunk: Buffer): void; end(): void } {
    if (this.empty) return { push: emit, end: () => undefined };
    let carry = Buffer.alloc(0);
    return {
      push: (chunk) => {
        const buf = this.bytes(carry.length ? Buffer.concat([carry, chunk]) : chunk);
        // A line end ends every form (multi-line values are masked line by line).
        const keep = buf[buf.length - 1] === 0x0a ? 0 : Math.min(this.holdBack, buf.length);
        carry = Buffer.from(buf.subarray(buf.length - keep));
        if (buf.length > keep) emit(buf.subarray(0, buf.length - keep));
      },
      end: () => {
        if (carry.length) emit(this.bytes(carry));
        carry = Buffer.alloc(0);
      },
    };
  }
}
