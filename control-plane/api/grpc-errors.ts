/** The one place that turns control-plane errors into gRPC statuses. */
import * as grpc from '@grpc/grpc-js';
import type { ApiErrorCode } from '../../common/errors.js';
import { encodeMessage } from '../../proto/index.js';
import { ApiError, LEADER_METADATA_KEY, NotLeaderError } from '../errors.js';

const STATUS: Record<ApiErrorCode, grpc.status> = {
  INVALID_WORKFLOW: grpc.status.INVALID_ARGUMENT,
  INVALID_PARAMS: grpc.status.INVALID_ARGUMENT,
  NO_MATCHING_AGENT: grpc.status.FAILED_PRECONDITION,
  PLAN_CHANGED: grpc.status.FAILED_PRECONDITION,
  RUN_NOT_FOUND: grpc.status.NOT_FOUND,
  AMBIGUOUS_RUN_ID: grpc.status.INVALID_ARGUMENT,
  STEP_NOT_FOUND: grpc.status.NOT_FOUND,
  AGENT_NOT_FOUND: grpc.status.NOT_FOUND,
  RUN_FINISHED: grpc.status.FAILED_PRECONDITION,
  RUN_SKIPPED: grpc.status.FAILED_PRECONDITION,
  RUN_NOT_FINISHED: grpc.status.FAILED_PRECONDITION,
  NOT_RERUNNABLE: grpc.status.FAILED_PRECONDITION,
  APPROVAL_NOT_OPEN: grpc.status.FAILED_PRECONDITION,
  APPROVAL_DECIDED: grpc.status.FAILED_PRECONDITION,
  WORKFLOW_NOT_FOUND: grpc.status.NOT_FOUND,
  DEVICE_NOT_FOUND: grpc.status.NOT_FOUND,
  DEVICE_EXISTS: grpc.status.ALREADY_EXISTS,
  INVALID_DEVICE: grpc.status.INVALID_ARGUMENT,
  INVALID_INPUT: grpc.status.INVALID_ARGUMENT,
  TOKEN_NOT_FOUND: grpc.status.NOT_FOUND,
  UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  PERMISSION_DENIED: grpc.status.PERMISSION_DENIED,
  INVALID_REQUEST: grpc.status.INVALID_ARGUMENT,
  SECRET_NOT_FOUND: grpc.status.NOT_FOUND,
  IDEMPOTENCY_KEY_REUSED: grpc.status.ALREADY_EXISTS,
  SCHEDULE_NOT_FOUND: grpc.status.NOT_FOUND,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
  NOT_LEADER: grpc.status.UNAVAILABLE,
  INTERNAL: grpc.status.INTERNAL,
};

export function toServiceError(err: unknown): Partial<grpc.StatusObject> {
  const e = err instanceof ApiError ? err : new ApiError('INTERNAL', `internal error: ${(err as Error)?.message ?? String(err)}`, 'see the server log');
  const metadata = new grpc.Metadata();
  metadata.set(
    'drover-error-bin',
    Buffer.from(encodeMessage('ErrorDetail', { code: e.code, message: e.message, hint: e.hint, problems: e.problems })),
  );
  if (e instanceof NotLeaderError && e.leader) metadata.set(LEADER_METADATA_KEY, e.leader);
  return { code: STATUS[e.code], details: e.message, metadata };
}

/** Wraps an async unary handler so every failure reaches the caller as a mapped status. */
export function unary<Req, Res>(fn: (req: Req) => Promise<Res> | Res): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => fn(call.request))
      .then(
        (res) => callback(null, res),
        (err: unknown) => callback(toServiceError(err) as grpc.ServiceError),
      );
  };
}
