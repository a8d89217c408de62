/**
 * Bounds on every message a peer sends: one check, driven by the contract's
 * own descriptor, that both ends can apply at their edge (the control plane
 * to API requests and agent messages, before anything is stored).
 *
 * Every field gets a default bound by its type (DEFAULTS); FIELD_LIMITS
 * tightens or widens single fields, by `Message.field` (camelCase, as the
 * decoded objects spell them). Numbers must be finite and, unless a field
 * says otherwise, between 0 and the largest safe integer; enum values must be
 * ones the contract names (an unknown number is refused, not passed on).
 * docs/security.md lists the limits.
 */
import protobuf from 'protobufjs';
import { contractRoot } from './index.js';

export interface FieldLimit {
  /** Strings and bytes: most bytes; maps: most bytes of each value. */
  maxBytes?: number;
  /** Repeated fields and maps: most entries. */
  maxItems?: number;
  /** Maps: most bytes of each key. */
  maxKeyBytes?: number;
  /** Numbers (and each item of a repeated number). */
  min?: number;
  max?: number;
}

/** Bounds of fields that FIELD_LIMITS does not name. */
export const DEFAULTS = {
  /** A name, an id, a label, a short message. */
  stringBytes: 4096,
  bytesBytes: 64 * 1024,
  items: 1024,
  mapItems: 256,
  keyBytes: 256,
  min: 0,
  max: Number.MAX_SAFE_INTEGER,
  int32Max: 2 ** 31 - 1,
} as const;

/** Workflow documents and their sources. */
const SOURCE = { maxBytes: 1024 * 1024 };
/** Label maps, as agents, tokens and devices carry them (key and value as Kubernetes bounds them). */
const LABELS = { maxItems: 64, maxKeyBytes: 63, maxBytes: 63 };
const PARAMS = { maxItems: 256, maxKeyBytes: 64, maxBytes: 64 * 1024 };
const PERCENT = { max: 100 };
const PEM = { maxBytes: 16 * 1024 };
/** Attempt ids in a Hello: at most this many steps run on one agent at once. */
const ATTEMPTS = { maxItems: 4096, maxBytes: 512 };

export const FIELD_LIMITS: Record<string, FieldLimit> = {
  'Hello.labels': LABELS,
  'Hello.runningAttempts': ATTEMPTS,
  'Hello.finishedAttempts': ATTEMPTS,
  'Hello.name': { maxBytes: 63 },
  'Facts.disks': { maxItems: 64 },
  'Facts.ipAddresses': { maxItems: 64, maxBytes: 64 },
  'Facts.cpuCount': { max: 65_536 },
  'Facts.hostname': { maxBytes: 255 },
  'Disk.mount': { maxBytes: 1024 },
  'Heartbeat.cpuPercent': PERCENT,
  'Heartbeat.memoryPercent': PERCENT,
  'Heartbeat.diskPercent': PERCENT,
  'Heartbeat.load': { maxItems: 3, max: 1_000_000 },
  'Heartbeat.runningSteps': { max: 65_536 },
  'StepEvent.exitCode': { min: -(2 ** 31) },
  'StepEvent.attempt': { max: 1000 },
  'StepEvent.cpuSeconds': { max: 1e12 },
  'StepEvent.outputs': { maxItems: 256, maxKeyBytes: 128, maxBytes: 256 * 1024 },
  'StepEvent.message': { maxBytes: 64 * 1024 },
  'LogChunk.data': { maxBytes: 1024 * 1024 },
  'RenewRequest.csrPem': PEM,
  'EnrollRequest.csrPem': PEM,
  'EnrollRequest.labels': LABELS,
  'CreateTokenRequest.labels': LABELS,
  'ListAgentsRequest.labels': LABELS,
  'ListDevicesRequest.labels': LABELS,
  'DeviceInfo.labels': LABELS,
  'SubmitRunRequest.source': SOURCE,
  'SubmitRunRequest.params': PARAMS,
  'PlanRunRequest.source': SOURCE,
  'PlanRunRequest.params': PARAMS,
  'ValidateWorkflowRequest.source': SOURCE,
  'ApplyWorkflowRequest.source': SOURCE,
  'SetSecretRequest.value': { maxBytes: 64 * 1024 },
  'ListRunsRequest.limit': { max: 10_000 },
  'WatchRunsRequest.limit': { max: 10_000 },
  'ListAuditRequest.limit': { max: 100_000 },
  /** 366 days and one trend point a minute over a day (control-plane/metrics/stats.ts checks the same for in-process callers). */
  'GetStatsRequest.windowMs': { max: 366 * 86_400_000 },
  'GetStatsRequest.buckets': { max: 1440 },
};

/** Nesting deeper than this is refused (the contract nests four levels at most). */
const MAX_DEPTH = 8;

/** A field over its bound: `field` is the path in the message, `limit` the bound in words. */
export interface Violation {
  field: string;
  message: string;
}

const types = new Map<string, protobuf.Type>();

function typeOf(name: string): protobuf.Type {
  let t = types.get(name);
  if (!t) {
    t = contractRoot().lookupType(`drover.v1.${name}`);
    types.set(name, t);
  }
  return t;
}

/** The request message type of every RPC, by gRPC path (`/drover.v1.RunService/ListRuns`). */
export function requestTypes(): Map<string, string> {
  const out = new Map<string, string>();
  const ns = contractRoot().lookup('drover.v1') as protobuf.Namespace;
  for (const s of ns.nestedArray) {
    if (!(s instanceof protobuf.Service)) continue;
    for (const m of s.methodsArray) out.set(`/drover.v1.${s.name}/${m.name}`, m.requestType);
  }
  return out;
}

const byteLength = (s: string) => (s.length * 3 <= 64 ? s.length * 3 : Buffer.byteLength(s));

/**
 * The first bound `value` (a decoded `typeName`, e.g. "AgentMessage") breaks,
 * or undefined. `path` prefixes the field names in the message.
 */
export function checkMessage(typeName: string, value: unknown, path = ''): Violation | undefined {
  return checkType(typeOf(typeName), value, path, 0);
}

/** A field with what its check needs, worked out once per type: per-message lookups cost more than decoding. */
interface Compiled {
  f: protobuf.Field;
  name: string;
  limit: FieldLimit;
  kind: 'map' | 'list' | 'message' | 'enum' | 'string' | 'bytes' | 'bool' | 'float' | 'int';
  min: number;
  max: number;
  maxBytes: number;
}
const compiled = new Map<protobuf.Type, Compiled[]>();

function fieldsOf(t: protobuf.Type): Compiled[] {
  let out = compiled.get(t);
  if (out) return out;
  out = t.fieldsArray.map((f): Compiled => {
    const limit = FIELD_LIMITS[`${t.name}.${f.name}`] ?? {};
    const rt = f.resolvedType;
    const kind: Compiled['kind'] = f.map
      ? 'map'
      : f.repeated
        ? 'list'
        : rt instanceof protobuf.Type
          ? 'message'
          : rt instanceof protobuf.Enum
            ? 'enum'
            : f.type === 'string' || f.type === 'bytes' || f.type === 'bool'
              ? f.type
              : f.type === 'double' || f.type === 'float'
                ? 'float'
                : 'int';
    const max = limit.max ?? (f.type.endsWith('32') ? DEFAULTS.int32Max : DEFAULTS.max);
    return { f, name: f.name, limit, kind, min: limit.min ?? DEFAULTS.min, max, maxBytes: limit.maxBytes ?? DEFAULTS.stringBytes };
  });
  compiled.set(t, out);
  return out;
}

function checkType(t: protobuf.Type, value: unknown, path: string, depth: number): Violation | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) return { field: path || t.name, message: `${path || t.name} must be a ${t.name} message` };
  if (depth > MAX_DEPTH) return { field: path, message: `${path} is nested deeper than ${MAX_DEPTH} levels` };
  const obj = value as Record<string, unknown>;
  for (const c of fieldsOf(t)) {
    const v = obj[c.name];
    if (v === undefined || v === null) continue;
    // The common cases first, without building a path: a scalar within its bounds.
    switch (c.kind) {
      case 'string':
        if (typeof v === 'string' && v.length * 3 <= c.maxBytes) continue;
        break;
      case 'bool':
        if (typeof v === 'boolean') continue;
        break;
      case 'float':
        if (typeof v === 'number' && v >= c.min && v <= c.max) continue;
        break;
      case 'int':
        if (typeof v === 'number' && Number.isSafeInteger(v) && v >= c.min && v <= c.max) continue;
        break;
      case 'enum':
        if (typeof v === 'string' && v in (c.f.resolvedType as protobuf.Enum).values) continue;
        break;
    }
    const at = path ? `${path}.${c.name}` : c.name;
    const bad = c.kind === 'map' ? checkMap(c.f, v, at, c.limit, depth) : c.kind === 'list' ? checkList(c.f, v, at, c.limit, depth) : checkValue(c.f, v, at, c.limit, depth);
    if (bad) return bad;
  }
  return undefined;
}

function checkMap(f: protobuf.Field, v: unknown, at: string, limit: FieldLimit, depth: number): Violation | undefined {
  if (typeof v !== 'object' || Array.isArray(v)) return { field: at, message: `${at} must be a map` };
  const entries = Object.entries(v as Record<string, unknown>);
  const maxItems = limit.maxItems ?? DEFAULTS.mapItems;
  if (entries.length > maxItems) return { field: at, message: `${at} has ${entries.length} entries; the limit is ${maxItems}` };
  const maxKey = limit.maxKeyBytes ?? DEFAULTS.keyBytes;
  for (const [k, x] of entries) {
    if (byteLength(k) > maxKey) return { field: at, message: `${at} has a key of ${Buffer.byteLength(k)} bytes ("${k.slice(0, 40)}…"); the limit is ${maxKey}` };
    const bad = checkValue(f, x, `${at}["${k.length > 40 ? `${k.slice(0, 40)}…` : k}"]`, limit, depth);
    if (bad) return bad;
  }
  return undefined;
}

function checkList(f: protobuf.Field, v: unknown, at: string, limit: FieldLimit, depth: number): Violation | undefined {
  if (!Array.isArray(v)) return { field: at, message: `${at} must be a list` };
  const maxItems = limit.maxItems ?? DEFAULTS.items;
  if (v.length > maxItems) return { field: at, message: `${at} has ${v.length} items; the limit is ${maxItems}` };
  for (let i = 0; i < v.length; i++) {
    const bad = checkValue(f, v[i], `${at}[${i}]`, limit, depth);
    if (bad) return bad;
  }
  return undefined;
}

function checkValue(f: protobuf.Field, v: unknown, at: string, limit: FieldLimit, depth: number): Violation | undefined {
  const rt = f.resolvedType;
  if (rt instanceof protobuf.Type) return checkType(rt, v, at, depth + 1);
  if (rt instanceof protobuf.Enum) {
    if (typeof v === 'string' && v in rt.values) return undefined;
    return { field: at, message: `${at} is ${JSON.stringify(v)}, which is not a known value; use one of ${Object.keys(rt.values).join(', ')}` };
  }
  switch (f.type) {
    case 'string': {
      if (typeof v !== 'string') return { field: at, message: `${at} must be text` };
      const max = limit.maxBytes ?? DEFAULTS.stringBytes;
      return byteLength(v) > max && Buffer.byteLength(v) > max ? { field: at, message: `${at} is ${Buffer.byteLength(v)} bytes; the limit is ${max}` } : undefined;
    }
    case 'bytes': {
      const n = v instanceof Uint8Array ? v.length : typeof v === 'string' ? Buffer.byteLength(v, 'base64') : -1;
      if (n < 0) return { field: at, message: `${at} must be bytes` };
      const max = limit.maxBytes ?? DEFAULTS.bytesBytes;
      return n > max ? { field: at, message: `${at} is ${n} bytes; the limit is ${max}` } : undefined;
    }
    case 'bool':
      return typeof v === 'boolean' ? undefined : { field: at, message: `${at} must be true or false` };
    default: {
      const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
      if (!Number.isFinite(n)) return { field: at, message: `${at} is ${String(v)}; it must be a finite number` };
      const integer = f.type !== 'double' && f.type !== 'float';
      if (integer && !Number.isSafeInteger(n)) return { field: at, message: `${at} is ${String(v)}; it must be a whole number below 2^53` };
      const min = limit.min ?? DEFAULTS.min;
      const max = limit.max ?? (f.type.endsWith('32') ? DEFAULTS.int32Max : DEFAULTS.max);
      return n < min || n > max ? { field: at, message: `${at} is ${String(v)}; it must be between ${min} and ${max}` } : undefined;
    }
  }
}
