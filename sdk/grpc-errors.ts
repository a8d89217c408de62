/**
 * The one place a failed gRPC call becomes a DroverError (docs/errors.md).
 * Apart from errors.ts because it needs the protobuf codec: only code that
 * has dialled a control plane loads it.
 */
import { status as GrpcStatus, type Metadata, type ServiceError } from '@grpc/grpc-js';
import { decodeMessage, type ErrorDetailOut } from '../proto/index.js';
import { toProblem } from './convert.js';
import {
  DroverError,
  ERROR_DETAIL_KEY,
  errorClassFor,
  InternalError,
  PermissionDeniedError,
  serverUnreachable,
  UnauthenticatedError,
} from './errors.js';

function readDetail(metadata: Metadata | undefined): ErrorDetailOut | undefined {
  const raw = metadata?.get(ERROR_DETAIL_KEY)[0];
  if (raw === undefined || typeof raw === 'string') return undefined;
  try {
    return decodeMessage<ErrorDetailOut>('ErrorDetail', raw);
  } catch {
    return undefined;
  }
}

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number';
}

/**
 * Maps a failed gRPC call to a DroverError. The server's ErrorDetail wins when
 * present; otherwise the status code decides. `address` names the server in
 * SERVER_UNREACHABLE messages.
 */
export function fromGrpcError(err: unknown, address: string): DroverError {
  if (err instanceof DroverError) return err;
  if (!isServiceError(err)) {
    return new InternalError(err instanceof Error ? err.message : String(err), { cause: err });
  }
  const detail = readDetail(err.metadata);
  const cls = detail && errorClassFor(detail.code);
  if (detail && cls) {
    return new cls(detail.message || err.details, {
      hint: detail.hint,
      problems: detail.problems.map(toProblem),
      cause: err,
    });
  }
  switch (err.code) {
    case GrpcStatus.UNAVAILABLE:
    case GrpcStatus.DEADLINE_EXCEEDED:
      return serverUnreachable(address, err);
    case GrpcStatus.UNAUTHENTICATED:
      return new UnauthenticatedError(err.details, { hint: 'pass --token or set DROVER_TOKEN', cause: err });
    case GrpcStatus.PERMISSION_DENIED:
      return new PermissionDeniedError(err.details, { hint: 'use a token with a role that allows this call', cause: err });
    case GrpcStatus.UNIMPLEMENTED:
      return new InternalError(`the server at ${address} does not implement this call: ${err.details}`, {
        hint: 'the server and the SDK may be different drover versions',
        cause: err,
      });
    default:
      return new InternalError(detail?.message || err.details || err.message, { hint: detail?.hint, cause: err });
  }
}
