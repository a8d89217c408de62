/**
 * The contract shared by every part: the gRPC package definition (built from
 * the embedded descriptor, never from .proto files on disk), a protobuf codec
 * for transports that carry raw bytes, and the generated message types.
 */
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import type { ProtoGrpcType } from './gen/api.js';
import { DESCRIPTOR } from './gen/descriptor.js';
import { LOADER_OPTIONS } from './options.js';

export { LOADER_OPTIONS } from './options.js';
export type * from './types.js';

type V1 = ProtoGrpcType['drover']['v1'];
/** The gRPC services of drover.v1, each a client constructor with its `service` definition. */
export type DroverServices = { [K in keyof V1 as V1[K] extends { service: unknown } ? K : never]: V1[K] };

let contract: DroverServices | undefined;

/**
 * A service's gRPC definition straight from the contract Root: what
 * @grpc/proto-loader's package definition holds for it (the same paths,
 * stream flags, serializers and LOADER_OPTIONS conversion,
 * test/unit/proto-services.test.ts), without the descriptor objects it also
 * builds for every message of every method. Only gRPC reflection reads
 * those, and encoding them for the whole contract was most of a CLI
 * command's start-up (docs/performance.md).
 */
function serviceDefinition(service: protobuf.Service): grpc.ServiceDefinition {
  const serialize = (t: protobuf.Type) => (value: object) => t.encode(t.fromObject(value)).finish() as Buffer;
  const deserialize = (t: protobuf.Type) => (bytes: Buffer) => t.toObject(t.decode(bytes), LOADER_OPTIONS);
  const def: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const m of service.methodsArray) {
    const req = m.resolvedRequestType!;
    const res = m.resolvedResponseType!;
    def[m.name] = {
      path: `/${service.fullName.slice(1)}/${m.name}`,
      requestStream: !!m.requestStream,
      responseStream: !!m.responseStream,
      requestSerialize: serialize(req),
      requestDeserialize: deserialize(req),
      responseSerialize: serialize(res),
      responseDeserialize: deserialize(res),
      originalName: m.name[0].toLowerCase() + m.name.slice(1),
    };
  }
  return def;
}

/** The drover.v1 gRPC services (client constructors and their definitions). */
export function droverV1(): DroverServices {
  if (!contract) {
    const v1 = contractRoot().lookup('drover.v1') as protobuf.Namespace;
    const services: Record<string, grpc.ServiceClientConstructor> = {};
    for (const obj of v1.nestedArray) if (obj instanceof protobuf.Service) services[obj.name] = grpc.makeGenericClientConstructor(serviceDefinition(obj), obj.name);
    contract = services as unknown as DroverServices;
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
