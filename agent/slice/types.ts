/**
 * The agent's own words for its slices of plans: what comes in (an
 * assignment, releases, cancels), what an attempt ended with, and what a
 * step reports. Domain code uses these string unions and plain objects;
 * agent/wire.ts is the one place that maps them to and from the proto enums.
 */
import type { PlanStepOut } from '../../proto/index.js';

/** How a step ended, as its dependents see it (a Release says the same of another agent's step). */
export type DoneStatus = 'succeeded' | 'failed' | 'skipped' | 'cancelled';

/** What a step event reports. */
export type Phase = 'started' | DoneStatus | 'lost' | 'retrying';

/** What the attempt ledger records at an attempt's end; 'retried': it failed and the step goes on with the next attempt. */
export type EndStatus = DoneStatus | 'lost' | 'retried';

export type Backoff = 'fixed' | 'exponential';

export type Stream = 'stdout' | 'stderr';

export interface RetryPolicy {
  /** Attempts in all, the first one included. */
  attempts: number;
  backoff: Backoff;
  initialMs: number;
  /** 0: no cap. */
  maxMs: number;
  /** Up to this fraction of the delay is added at random. */
  jitter: number;
  /** Exit codes worth another attempt; empty: any failure. A lost attempt is always retried. */
  retryOn: number[];
}

/** A plan step of this agent's slice: the plan's fields, with those that are wire-only converted. */
export type StepSpec = Omit<PlanStepOut, 'retry' | 'itemJson' | 'target'> & {
  retry?: RetryPolicy;
  /** The fan-out item this step runs for, as a CEL value. */
  item?: unknown;
};

/** A step of this agent's, with the secrets sent for it (memory only). */
export interface AssignedStep {
  spec: StepSpec;
  /** Stored secrets (`secrets.NAME`). */
  secrets: Record<string, string>;
  /** Secret params: they override the run's params for this step. */
  secretParams: Record<string, string>;
}

/** This agent's part of a run (more parts of the same run may follow). */
export interface Assignment {
  runId: string;
  workflow: string;
  /** Typed params as CEL values (whole numbers as BigInt ints). */
  params: Record<string, unknown>;
  startedMs: number;
  steps: AssignedStep[];
  /** Other agents' steps this slice needs that are done already. */
  released: Release[];
}

/** Another agent's step is done: this slice's steps that need it may go on. */
export interface Release {
  runId: string;
  stepId: string;
  status: DoneStatus;
  outputs: Record<string, string>;
  /** Failed, but with continueOnError: dependents proceed. */
  tolerated: boolean;
}

/** Stop a run's steps here, or one step ('' : all of them). */
export interface Cancel {
  runId: string;
  stepId: string;
  reason: string;
}

/** What an attempt reports besides its phase; outputs are masked already. */
export interface AttemptReport {
  exitCode?: number;
  signal?: string;
  startedAtMs?: number;
  endedAtMs?: number;
  cpuSeconds?: number;
  peakRssBytes?: number;
  outputs?: Record<string, string>;
}

/** A step event's content: an attempt's report and a message for people. */
export interface EventFields extends AttemptReport {
  message?: string;
}
