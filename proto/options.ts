/**
 * The one set of proto-loader options used by the runtime (both transports)
 * and by the type generator, so generated types always match what decoding
 * produces.
 *
 * longs: Number — every 64-bit field in the contract is a counter, a byte
 * count or a millisecond timestamp, all far below 2^53, so domain code gets
 * plain numbers instead of strings or Long objects.
 */
export const LOADER_OPTIONS = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
} as const;

/** The same options spelled as proto-loader-gen-types flags. */
export const GEN_TYPES_FLAGS = ['--longs=Number', '--enums=String', '--defaults', '--oneofs', '--grpcLib=@grpc/grpc-js'];

/** The .proto files of the contract, relative to proto/. */
export const PROTO_FILES = ['drover/v1/plan.proto', 'drover/v1/agent.proto', 'drover/v1/api.proto'];
