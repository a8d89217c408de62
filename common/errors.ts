/**
 * Errors more than one part uses: the codes the API returns in an
 * ErrorDetail (docs/errors.md) and the located Problem it reports about a
 * workflow (control plane and SDK), and the bad-option error of `drover
 * server` and `drover agent`. Each part keeps its own API error classes: the
 * control plane's carry what the gRPC mapping needs; the SDK's are its public
 * API and add client-side codes.
 */

/** Every code the control plane's API returns; the SDK adds its client-side codes to these. */
export type ApiErrorCode =
  | 'INVALID_WORKFLOW'
  | 'INVALID_PARAMS'
  | 'NO_MATCHING_AGENT'
  | 'PLAN_CHANGED'
  | 'RUN_NOT_FOUND'
  | 'AMBIGUOUS_RUN_ID'
  | 'STEP_NOT_FOUND'
  | 'AGENT_NOT_FOUND'
  | 'RUN_FINISHED'
  | 'RUN_SKIPPED'
  | 'RUN_NOT_FINISHED'
  | 'NOT_RERUNNABLE'
  | 'APPROVAL_NOT_OPEN'
  | 'APPROVAL_DECIDED'
  | 'WORKFLOW_NOT_FOUND'
  | 'DEVICE_NOT_FOUND'
  | 'DEVICE_EXISTS'
  | 'INVALID_DEVICE'
  | 'INVALID_INPUT'
  | 'TOKEN_NOT_FOUND'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'INVALID_REQUEST'
  | 'SECRET_NOT_FOUND'
  | 'IDEMPOTENCY_KEY_REUSED'
  | 'SCHEDULE_NOT_FOUND'
  | 'UNAVAILABLE'
  | 'NOT_LEADER'
  | 'INTERNAL';

/** A located complaint about a workflow document or its params. */
export interface Problem {
  /** Path in the document, e.g. `steps[2].needs[0]`. */
  path: string;
  /** 1-based; 0 when unknown. */
  line: number;
  /** 1-based; 0 when unknown. */
  column: number;
  message: string;
  severity: 'error' | 'warning';
}

/** An option of `drover server` or `drover agent` (flag, environment or config file) is not valid; the message names it and what to give. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly code = 'BAD_CONFIG';
}

/** gRPC metadata key of a NOT_LEADER refusal that names the leader's address (HOST:PORT): clients and agents go there. */
export const LEADER_METADATA_KEY = 'drover-leader';
