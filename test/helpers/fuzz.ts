/**
 * Hostile messages for the fuzz suite, built from the contract's descriptor:
 * each structured one breaks exactly one bound of proto/limits.ts (a string
 * or list past its limit, a number out of range or not finite, an enum value
 * the contract does not name) with every other field ordinary or absent, so
 * the edge must refuse it whatever the rest says. Random byte blobs cover the
 * decoder. Deterministic for a seed.
 */
import protobuf from 'protobufjs';
import { contractRoot } from '../../proto/index.js';
import { DEFAULTS, FIELD_LIMITS } from '../../proto/limits.js';

export function type(name: string): protobuf.Type {
  return contractRoot().lookupType(`drover.v1.${name}`);
}

/** A small seeded PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const ordinaryString = (r: Rand) => pick(r, ['', 'a', 'x y', 'r-1/s/1', '../../etc/passwd', '${{ secrets.X }}', '\u0000\u202e', 'ünïcødé', "'; DROP TABLE", '%s%n']);

function limitOf(t: protobuf.Type, f: protobuf.Field) {
  return FIELD_LIMITS[`${t.name}.${f.name}`] ?? {};
}

/** An ordinary value for a field (within bounds, not necessarily meaningful). */
function ordinary(f: protobuf.Field, r: Rand, depth: number): unknown {
  const rt = f.resolvedType;
  if (rt instanceof protobuf.Type) return depth > 3 ? {} : ordinaryMessage(rt, r, depth + 1);
  if (rt instanceof protobuf.Enum) return pick(r, Object.values(rt.values));
  switch (f.type) {
    case 'string':
      return ordinaryString(r);
    case 'bytes':
      return Buffer.from(ordinaryString(r));
    case 'bool':
      return r() < 0.5;
    case 'double':
    case 'float':
      return r() * 50;
    default:
      return Math.floor(r() * 50);
  }
}

function ordinaryMessage(t: protobuf.Type, r: Rand, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of t.fieldsArray) {
    if (r() < 0.5) continue;
    if (f.partOf && Object.keys(out).some((k) => f.partOf!.oneof.includes(k))) continue;
    out[f.name] = f.map ? { k: ordinary(f, r, depth) } : f.repeated ? [ordinary(f, r, depth)] : ordinary(f, r, depth);
  }
  return out;
}

/** Ways a field can break its bound; empty when it has none (a bool, an unbounded number). */
function breakers(t: protobuf.Type, f: protobuf.Field, r: Rand): (() => unknown)[] {
  const lim = limitOf(t, f);
  const rt = f.resolvedType;
  const out: (() => unknown)[] = [];
  if (f.map) {
    const items = lim.maxItems ?? DEFAULTS.mapItems;
    out.push(() => Object.fromEntries(Array.from({ length: items + 1 + Math.floor(r() * 50) }, (_, i) => [`k${i}`, ordinary(f, r, 9)])));
    out.push(() => ({ ['k'.repeat((lim.maxKeyBytes ?? DEFAULTS.keyBytes) + 1)]: ordinary(f, r, 9) }));
    return out;
  }
  if (f.repeated) {
    const items = lim.maxItems ?? DEFAULTS.items;
    out.push(() => Array.from({ length: items + 1 }, () => ordinary(f, r, 9)));
  }
  const one = (v: () => unknown) => out.push(f.repeated ? () => [v()] : v);
  if (rt instanceof protobuf.Type) {
    // A nested message with a hostile field of its own.
    if (rt.fieldsArray.some((g) => breakers(rt, g, r).length)) one(() => hostileMessage(rt.name, r));
    return out;
  }
  if (rt instanceof protobuf.Enum) {
    one(() => 1000 + Math.floor(r() * 100000));
    return out;
  }
  switch (f.type) {
    case 'string': {
      const max = lim.maxBytes ?? DEFAULTS.stringBytes;
      one(() => 'x'.repeat(max + 1 + Math.floor(r() * 1000)));
      break;
    }
    case 'bytes': {
      const max = lim.maxBytes ?? DEFAULTS.bytesBytes;
      one(() => Buffer.alloc(max + 1, 0x41));
      break;
    }
    case 'double':
    case 'float':
      one(() => pick(r, [NaN, Infinity, -Infinity, -1e300]));
      if (lim.max !== undefined) one(() => lim.max! * 2 + 1);
      break;
    case 'bool':
      break;
    default: {
      const min = lim.min ?? DEFAULTS.min;
      const is64 = f.type.endsWith('64');
      if (min >= 0 && !f.type.startsWith('u') && !f.type.startsWith('fixed')) one(() => -1 - Math.floor(r() * 1000));
      if (is64) one(() => pick(r, ['9223372036854775807', '-9223372036854775808', '9007199254740993']));
      if (lim.max !== undefined && lim.max < 2 ** 31 - 1) one(() => lim.max! + 1);
    }
  }
  return out;
}

/** A `typeName` message that breaks one bound (never in the fields `keep` names); undefined when the type has none to break. */
export function hostileMessage(typeName: string, r: Rand, keep: readonly string[] = []): Record<string, unknown> | undefined {
  const t = type(typeName);
  const candidates = t.fieldsArray.filter((f) => !keep.includes(f.name)).map((f) => ({ f, ways: breakers(t, f, r) })).filter((c) => c.ways.length);
  if (!candidates.length) return undefined;
  const { f, ways } = pick(r, candidates);
  const msg = ordinaryMessage(t, r, 0);
  // The hostile field wins its oneof.
  if (f.partOf) for (const other of f.partOf.oneof) delete msg[other];
  msg[f.name] = pick(r, ways)();
  return msg;
}

/** Encodes a plain object of `typeName` (numbers for enums, as the wire has them). */
export function encode(typeName: string, value: Record<string, unknown>): Buffer {
  return Buffer.from(type(typeName).encode(value).finish());
}

/** Random bytes: sometimes pure noise, sometimes a valid tag prefix followed by noise. */
export function noise(r: Rand): Buffer {
  const n = Math.floor(r() * 300);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  if (n > 2 && r() < 0.5) b[0] = 0x0a; // field 1, length-delimited
  return b;
}
