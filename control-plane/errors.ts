/**
 * Errors the control plane returns to API callers. Each has a stable `code`
 * (see docs/errors.md); the mapping to gRPC status lives in api/grpc-errors.ts.
 */
import type { ApiErrorCode, Problem } from '../common/errors.js';
import { compileFailure } from '../common/workflow/compiler/failure.js';

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly hint = '',
    readonly problems: Problem[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The workflow document or its params did not compile. */
export class InvalidWorkflowError extends ApiError {
  override name = 'InvalidWorkflowError';
  constructor(file: string, problems: Problem[]) {
    const f = compileFailure(file, problems);
    super(f.code, f.message, f.hint, problems);
  }
}

/** The document compiles but the params given do not fit it; `problems` name each param. */
export class InvalidParamsError extends ApiError {
  override name = 'InvalidParamsError';
  constructor(file: string, problems: Problem[]) {
    const f = compileFailure(file, problems, true);
    super(f.code, f.message, f.hint, problems);
  }
}

export class NotFoundError extends ApiError {
  override name = 'NotFoundError';
}

/**
 * The control plane cannot write its data dir (a full, read-only or failing
 * disk), so it takes no change that needs a durable write; reads still work.
 * `outcome` says what became of the call ("no run was started").
 */
export class UnavailableError extends ApiError {
  override name = 'UnavailableError';
  constructor(problem: { dir: string; code: string; message: string; where?: string; fix?: string }, outcome: string, options?: { cause?: unknown }) {
    super(
      'UNAVAILABLE',
      `the control plane cannot write ${problem.where ? `its state to ${problem.where}` : `its data dir${problem.dir ? ` ${problem.dir}` : ''}`} (${problem.code}: ${problem.message}); ${outcome}`,
      `${problem.fix ?? 'free space or fix the disk'}; the control plane retries by itself and takes new runs again once a write succeeds`,
      [],
      options,
    );
  }
}

export { LEADER_METADATA_KEY } from '../common/errors.js';

/**
 * A standby replica refused the call (it did nothing with it): another
 * replica leads, at `leader` ('' while none is elected). Clients repeat the
 * call there; agents dial it.
 */
export class NotLeaderError extends ApiError {
  override name = 'NotLeaderError';
  readonly leader: string;
  constructor(self: string, leader: { address: string; epoch: number } | undefined) {
    super(
      'NOT_LEADER',
      leader
        ? `the control plane at ${self} is a standby replica; the leader is ${leader.address} (epoch ${leader.epoch})`
        : `the control plane at ${self} is a standby replica and no leader is elected yet (an election takes up to the lease length, 3 s by default)`,
      leader ? `the CLI and SDK repeat the call at ${leader.address} by themselves; or point --server / DROVER_ADDR at it` : 'try again in a few seconds; `drover server status` shows the replicas',
    );
    this.leader = leader?.address ?? '';
  }
}
