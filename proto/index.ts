/**
 * The contract shared by every part: the gRPC package definition (built from
 * the embedded descriptor, never from .proto files on disk), a protobuf codec
 * for transports that carry raw bytes, and the generated message types.
 */
import * as grpc from '@grpc/grpc-js';
import { fromJSON } from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import type { ProtoGrpcType } from './gen/api.js';
import { DESCRIPTOR } from './gen/descriptor.js';
import { LOADER_OPTIONS } from './options.js';

export { LOADER_OPTIONS } from './options.js';
export type * from './types.js';

let contract: ProtoGrpcType['drover']['v1'] | undefined;

/** The drover.v1 gRPC package (service constructors and definitions). */
export function droverV1(): ProtoGrpcType['drover']['v1'] {
  if (!contract) {
    // The descriptor is plain JSON; proto-loader's typing wants a mutable INamespace.
    const def = fromJSON(DESCRIPTOR as unknown as protobuf.INamespace, LOADER_OPTIONS);
    contract = (grpc.loadPackageDefinition(def) as unknown as ProtoGrpcType).drover.v1;
  }
  return contract;
}

let pbRoot: protobuf.Root | undefined;
const typeCache = new Map<string, protobuf.Type>();

/** The contract as a protobufjs Root, parsed and resolved once per process (the codec, the bounds check and tests share it). */
export function contractRoot(): protobuf.Root {
  if (!pbRoot) {
    pbRoot = protobuf.Root.fromJSON(DESCRIPTOR as unknown as protobuf.INamespace);
    pbRoot.resolveAll();
  }
  return pbRoot;
}

function messageType(name: string): protobuf.Type {
  let t = typeCache.get(name);
  if (!t) {
    t = contractRoot().lookupType(`drover.v1.${name}`);
    typeCache.set(name, t);
  }
  return t;
}

/** Encodes a drover.v1 message (by short name, e.g. "AgentMessage") to bytes. */
export function encodeMessage(name: string, value: object): Uint8Array {
  const t = messageType(name);
  return t.encode(t.fromObject(value)).finish();
}

/**
 * The conversion options of decodeMessage, built once: a fresh options object
 * per call made decoding six times slower (about 6 µs instead of 1 µs per
 * heartbeat), which at thousands of agent messages a second was a fifth of an
 * idle control plane's CPU (docs/performance.md).
 */
const TO_OBJECT: protobuf.IConversionOptions = { ...LOADER_OPTIONS, arrays: true, objects: true };

/** Decodes bytes into the same plain-object shape the gRPC transport yields. */
export function decodeMessage<T>(name: string, bytes: Uint8Array): T {
  const t = messageType(name);
  return t.toObject(t.decode(bytes), TO_OBJECT) as T;
}
