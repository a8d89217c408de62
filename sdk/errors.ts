/**
 * Errors the SDK throws. Every error is a DroverError with a stable `code`
 * (see docs/errors.md); server errors arrive as a gRPC status plus an encoded
 * ErrorDetail in the `drover-error-bin` trailer, and `fromGrpcError`
 * (grpc-errors.ts) is the one place that turns them into these classes.
 * This file loads no gRPC or protobuf code: every CLI command imports it,
 * including those that never dial (`drover --help`, docs/performance.md).
 */
import type { ApiErrorCode, Problem } from '../common/errors.js';

/** Every code the SDK can report: the server's, and its own client-side ones. */
export type ErrorCode = ApiErrorCode | 'SERVER_UNREACHABLE' | 'FILE_NOT_FOUND' | 'INSTALL_FAILED';

export type { Problem };

/** Extra fields every DroverError may carry. */
export interface DroverErrorOptions {
  hint?: string;
  problems?: Problem[];
  cause?: unknown;
}

/** Base class: `code` is stable and documented; `message` is for people. */
export class DroverError extends Error {
  override readonly name: string = 'DroverError';
  readonly code: ErrorCode;
  /** What to do about it, when there is something to suggest. */
  readonly hint: string;
  readonly problems: Problem[];

  constructor(code: ErrorCode, message: string, options: DroverErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint ?? '';
    this.problems = options.problems ?? [];
  }
}

/** The workflow document does not compile; see `problems`. */
export class InvalidWorkflowError extends DroverError {
  override readonly name = 'InvalidWorkflowError';
  declare readonly code: 'INVALID_WORKFLOW';
  constructor(message: string, options?: DroverErrorOptions) {
    super('INVALID_WORKFLOW', message, options);
  }
}

/** A param is missing, unknown or fails its type, pattern or enum. */
export class InvalidParamsError extends DroverError {
  override readonly name = 'InvalidParamsError';
  declare readonly code: 'INVALID_PARAMS';
  constructor(message: string, options?: DroverErrorOptions) {
    super('INVALID_PARAMS', message, options);
  }
}

/** A step's target selects no known agent. */
export class NoMatchingAgentError extends DroverError {
  override readonly name = 'NoMatchingAgentError';
  declare readonly code: 'NO_MATCHING_AGENT';
  constructor(message: string, options?: DroverErrorOptions) {
    super('NO_MATCHING_AGENT', message, options);
  }
}

/** The compiled plan's hash differs from `expectPlanHash`. */
export class PlanChangedError extends DroverError {
  override readonly name = 'PlanChangedError';
  declare readonly code: 'PLAN_CHANGED';
  constructor(message: string, options?: DroverErrorOptions) {
    super('PLAN_CHANGED', message, options);
  }
}

/** No run has that id. */
export class RunNotFoundError extends DroverError {
  override readonly name = 'RunNotFoundError';
  declare readonly code: 'RUN_NOT_FOUND';
  constructor(message: string, options?: DroverErrorOptions) {
    super('RUN_NOT_FOUND', message, options);
  }
}

/** A run id prefix matches more than one run; the message names up to five of them. */
export class AmbiguousRunIdError extends DroverError {
  override readonly name = 'AmbiguousRunIdError';
  declare readonly code: 'AMBIGUOUS_RUN_ID';
  constructor(message: string, options?: DroverErrorOptions) {
    super('AMBIGUOUS_RUN_ID', message, options);
  }
}

/** The run has no step with that id (`logs(run, step)`); the hint lists its steps. */
export class StepNotFoundError extends DroverError {
  override readonly name = 'StepNotFoundError';
  declare readonly code: 'STEP_NOT_FOUND';
  constructor(message: string, options?: DroverErrorOptions) {
    super('STEP_NOT_FOUND', message, options);
  }
}

/** No agent has that name. */
export class AgentNotFoundError extends DroverError {
  override readonly name = 'AgentNotFoundError';
  declare readonly code: 'AGENT_NOT_FOUND';
  constructor(message: string, options?: DroverErrorOptions) {
    super('AGENT_NOT_FOUND', message, options);
  }
}

/** The run already ended, so it cannot be cancelled. */
export class RunFinishedError extends DroverError {
  override readonly name = 'RunFinishedError';
  declare readonly code: 'RUN_FINISHED';
  constructor(message: string, options?: DroverErrorOptions) {
    super('RUN_FINISHED', message, options);
  }
}

/** No registered workflow has that name (or that version). */
export class WorkflowNotFoundError extends DroverError {
  override readonly name = 'WorkflowNotFoundError';
  declare readonly code: 'WORKFLOW_NOT_FOUND';
  constructor(message: string, options?: DroverErrorOptions) {
    super('WORKFLOW_NOT_FOUND', message, options);
  }
}

/** The workflow has `concurrency: skip` and a run of it is still active; nothing was started. */
export class RunSkippedError extends DroverError {
  override readonly name = 'RunSkippedError';
  declare readonly code: 'RUN_SKIPPED';
  constructor(message: string, options?: DroverErrorOptions) {
    super('RUN_SKIPPED', message, options);
  }
}

/** A re-run of a run that is still pending or running: wait for it or cancel it. */
export class RunNotFinishedError extends DroverError {
  override readonly name = 'RunNotFinishedError';
  declare readonly code: 'RUN_NOT_FINISHED';
  constructor(message: string, options?: DroverErrorOptions) {
    super('RUN_NOT_FINISHED', message, options);
  }
}

/** The finished run cannot be re-run as asked (a step that would run again needs a secret param, or --failed-only with nothing failed); nothing was started. */
export class NotRerunnableError extends DroverError {
  override readonly name = 'NotRerunnableError';
  declare readonly code: 'NOT_RERUNNABLE';
  constructor(message: string, options?: DroverErrorOptions) {
    super('NOT_RERUNNABLE', message, options);
  }
}

/** The step is an approval gate that is not open: it waits for its needs, or was skipped or cancelled. */
export class ApprovalNotOpenError extends DroverError {
  override readonly name = 'ApprovalNotOpenError';
  declare readonly code: 'APPROVAL_NOT_OPEN';
  constructor(message: string, options?: DroverErrorOptions) {
    super('APPROVAL_NOT_OPEN', message, options);
  }
}

/** The approval gate was decided already (or timed out); the message says how and by whom. */
export class ApprovalDecidedError extends DroverError {
  override readonly name = 'ApprovalDecidedError';
  declare readonly code: 'APPROVAL_DECIDED';
  constructor(message: string, options?: DroverErrorOptions) {
    super('APPROVAL_DECIDED', message, options);
  }
}

/** No device in the inventory has that name. */
export class DeviceNotFoundError extends DroverError {
  override readonly name = 'DeviceNotFoundError';
  declare readonly code: 'DEVICE_NOT_FOUND';
  constructor(message: string, options?: DroverErrorOptions) {
    super('DEVICE_NOT_FOUND', message, options);
  }
}

/** A device of that name is already registered (pass `replace` to replace it). */
export class DeviceExistsError extends DroverError {
  override readonly name = 'DeviceExistsError';
  declare readonly code: 'DEVICE_EXISTS';
  constructor(message: string, options?: DroverErrorOptions) {
    super('DEVICE_EXISTS', message, options);
  }
}

/** A device's fields are not valid (name, host, port, credential reference, network, labels). */
export class InvalidDeviceError extends DroverError {
  override readonly name = 'InvalidDeviceError';
  declare readonly code: 'INVALID_DEVICE';
  constructor(message: string, options?: DroverErrorOptions) {
    super('INVALID_DEVICE', message, options);
  }
}

/** The server failed, or answered in a way the SDK does not understand. */
export class InternalError extends DroverError {
  override readonly name = 'InternalError';
  declare readonly code: 'INTERNAL';
  constructor(message: string, options?: DroverErrorOptions) {
    super('INTERNAL', message, options);
  }
}

/** No control plane answered at the address. */
export class ServerUnreachableError extends DroverError {
  override readonly name = 'ServerUnreachableError';
  declare readonly code: 'SERVER_UNREACHABLE';
  constructor(message: string, options?: DroverErrorOptions) {
    super('SERVER_UNREACHABLE', message, options);
  }
}

/** A file named by the caller does not exist. */
export class FileNotFoundError extends DroverError {
  override readonly name = 'FileNotFoundError';
  declare readonly code: 'FILE_NOT_FOUND';
  constructor(message: string, options?: DroverErrorOptions) {
    super('FILE_NOT_FOUND', message, options);
  }
}

/** The caller's input is malformed (bad `key=value`, unreadable file, bad option). */
export class InvalidInputError extends DroverError {
  override readonly name = 'InvalidInputError';
  declare readonly code: 'INVALID_INPUT';
  constructor(message: string, options?: DroverErrorOptions) {
    super('INVALID_INPUT', message, options);
  }
}

/** A request field is over a documented limit (length, count, range) or not a known enum value. */
export class InvalidRequestError extends DroverError {
  override readonly name = 'InvalidRequestError';
  declare readonly code: 'INVALID_REQUEST';
  constructor(message: string, options?: DroverErrorOptions) {
    super('INVALID_REQUEST', message, options);
  }
}

/** No secret of that name is stored (`drover secret list`). */
export class SecretNotFoundError extends DroverError {
  override readonly name = 'SecretNotFoundError';
  declare readonly code: 'SECRET_NOT_FOUND';
  constructor(message: string, options?: DroverErrorOptions) {
    super('SECRET_NOT_FOUND', message, options);
  }
}

/** No registered workflow declares a cron schedule of that name; the message lists the names there are. */
export class ScheduleNotFoundError extends DroverError {
  override readonly name = 'ScheduleNotFoundError';
  declare readonly code: 'SCHEDULE_NOT_FOUND';
  constructor(message: string, options?: DroverErrorOptions) {
    super('SCHEDULE_NOT_FOUND', message, options);
  }
}

/**
 * A launch's idempotency key already started a run of the workflow with
 * other params (within the retention window): nothing was started. A retry
 * sends the same params; a new request needs a new key.
 */
export class IdempotencyKeyReusedError extends DroverError {
  override readonly name = 'IdempotencyKeyReusedError';
  declare readonly code: 'IDEMPOTENCY_KEY_REUSED';
  constructor(message: string, options?: DroverErrorOptions) {
    super('IDEMPOTENCY_KEY_REUSED', message, options);
  }
}

/**
 * The control plane cannot write its data dir (full, read-only or failing
 * disk): it refused a change and made none (a run launched now was not
 * started). It retries by itself; try again once the disk is fixed.
 */
export class UnavailableError extends DroverError {
  override readonly name = 'UnavailableError';
  declare readonly code: 'UNAVAILABLE';
  constructor(message: string, options?: DroverErrorOptions) {
    super('UNAVAILABLE', message, options);
  }
}

/**
 * A standby replica of a replicated control plane refused the call and did
 * nothing with it. The SDK repeats a call at the leader it names by itself;
 * this reaches you only while no leader is elected (try again shortly).
 */
export class NotLeaderError extends DroverError {
  override readonly name = 'NotLeaderError';
  declare readonly code: 'NOT_LEADER';
  constructor(message: string, options?: DroverErrorOptions) {
    super('NOT_LEADER', message, options);
  }
}

/** The call carried no API token, or one that is wrong, expired or revoked. */
export class UnauthenticatedError extends DroverError {
  override readonly name = 'UnauthenticatedError';
  declare readonly code: 'UNAUTHENTICATED';
  constructor(message: string, options?: DroverErrorOptions) {
    super('UNAUTHENTICATED', message, options);
  }
}

/** The token is valid but its role may not make this call. */
export class PermissionDeniedError extends DroverError {
  override readonly name = 'PermissionDeniedError';
  declare readonly code: 'PERMISSION_DENIED';
  constructor(message: string, options?: DroverErrorOptions) {
    super('PERMISSION_DENIED', message, options);
  }
}

/** No token has that id. */
export class TokenNotFoundError extends DroverError {
  override readonly name = 'TokenNotFoundError';
  declare readonly code: 'TOKEN_NOT_FOUND';
  constructor(message: string, options?: DroverErrorOptions) {
    super('TOKEN_NOT_FOUND', message, options);
  }
}

/**
 * Why installing (or uninstalling) an agent on one host failed; stable, see
 * docs/install.md. The error's `hint` says how to fix it.
 */
export type InstallFailure =
  | 'BAD_INPUT'
  | 'BAD_IDENTITY'
  | 'AUTH_FAILED'
  | 'HOST_KEY_UNKNOWN'
  | 'HOST_KEY_CHANGED'
  | 'UNREACHABLE'
  | 'UNSUPPORTED_PLATFORM'
  | 'NO_BINARY'
  | 'NO_DISK_SPACE'
  | 'SUDO_FAILED'
  | 'NAME_CONFLICT'
  | 'COMMAND_FAILED'
  | 'NOT_CONNECTED';

/** Options of an InstallError. */
export interface InstallErrorOptions extends DroverErrorOptions {
  reason?: InstallFailure;
  /** True when a failed install was undone, so the host is as it was before. */
  rolledBack?: boolean;
}

/** `drover agent install`/`uninstall` failed on a host; `reason` says why and `hint` how to fix it. */
export class InstallError extends DroverError {
  override readonly name = 'InstallError';
  declare readonly code: 'INSTALL_FAILED';
  readonly reason: InstallFailure;
  readonly rolledBack: boolean;
  constructor(message: string, options: InstallErrorOptions = {}) {
    super('INSTALL_FAILED', message, options);
    this.reason = options.reason ?? 'COMMAND_FAILED';
    this.rolledBack = options.rolledBack ?? false;
  }
}

const BY_CODE = {
  INVALID_WORKFLOW: InvalidWorkflowError,
  INVALID_PARAMS: InvalidParamsError,
  NO_MATCHING_AGENT: NoMatchingAgentError,
  PLAN_CHANGED: PlanChangedError,
  RUN_NOT_FOUND: RunNotFoundError,
  AMBIGUOUS_RUN_ID: AmbiguousRunIdError,
  STEP_NOT_FOUND: StepNotFoundError,
  AGENT_NOT_FOUND: AgentNotFoundError,
  RUN_FINISHED: RunFinishedError,
  WORKFLOW_NOT_FOUND: WorkflowNotFoundError,
  RUN_SKIPPED: RunSkippedError,
  RUN_NOT_FINISHED: RunNotFinishedError,
  NOT_RERUNNABLE: NotRerunnableError,
  APPROVAL_NOT_OPEN: ApprovalNotOpenError,
  APPROVAL_DECIDED: ApprovalDecidedError,
  DEVICE_NOT_FOUND: DeviceNotFoundError,
  DEVICE_EXISTS: DeviceExistsError,
  INVALID_DEVICE: InvalidDeviceError,
  INTERNAL: InternalError,
  SERVER_UNREACHABLE: ServerUnreachableError,
  FILE_NOT_FOUND: FileNotFoundError,
  INVALID_INPUT: InvalidInputError,
  INSTALL_FAILED: InstallError,
  UNAUTHENTICATED: UnauthenticatedError,
  PERMISSION_DENIED: PermissionDeniedError,
  TOKEN_NOT_FOUND: TokenNotFoundError,
  INVALID_REQUEST: InvalidRequestError,
  SECRET_NOT_FOUND: SecretNotFoundError,
  IDEMPOTENCY_KEY_REUSED: IdempotencyKeyReusedError,
  SCHEDULE_NOT_FOUND: ScheduleNotFoundError,
  UNAVAILABLE: UnavailableError,
  NOT_LEADER: NotLeaderError,
} as const satisfies Record<ErrorCode, new (message: string, options?: DroverErrorOptions) => DroverError>;

/** The DroverError subclass for a wire code, or undefined for a code this SDK does not know (a newer server's). */
export function errorClassFor(code: string): (new (message: string, options?: DroverErrorOptions) => DroverError) | undefined {
  return Object.hasOwn(BY_CODE, code) ? BY_CODE[code as ErrorCode] : undefined;
}

/** Trailing metadata key holding an encoded drover.v1.ErrorDetail. */
export const ERROR_DETAIL_KEY = 'drover-error-bin';

/** The SERVER_UNREACHABLE error for an address, with how to get a server there. */
export function serverUnreachable(address: string, cause?: unknown): ServerUnreachableError {
  return new ServerUnreachableError(
    `no drover control plane answered at ${address}; start one with \`drover server\` (or \`drover dev\` for a local fleet), or select another address with DROVER_ADDR or --server`,
    { hint: '`drover dev` starts a control plane and three agents on this machine', cause },
  );
}
