/**
 * The control plane's state behind one interface. Records are plain objects
 * owned by the store: mutate a record you got, then `put` it to mark it dirty.
 * Writes are coalesced; `flush()` resolves once everything put so far is on
 * disk (the control plane acknowledges agent messages only after that).
 * A change a put does not name (a step changed but not passed to putRun)
 * may not be written.
 */
import type { LogRecord, RunRecord, StepRecord } from '../model/run.js';
import type { FleetDevice } from '../../common/workflow/model/target.js';
import type { FleetSample } from './fleet-samples.js';

export type { AttemptRecord, AttemptStatus, LogRecord, RunRecord, RunStatus, StepRecord, StepStatus } from '../model/run.js';
export { TERMINAL_RUN, TERMINAL_STEP } from '../model/run.js';
export type { FleetSample } from './fleet-samples.js';
export { FLEET_SAMPLE_RETENTION_MS } from './fleet-samples.js';

export interface AgentFacts {
  hostname: string;
  os: string;
  osRelease: string;
  arch: string;
  cpuModel: string;
  cpuCount: number;
  memoryBytes: number;
  disks: { mount: string; fs: string; sizeBytes: number }[];
  ipAddresses: string[];
  agentVersion: string;
}

export interface AgentRecord {
  name: string;
  labels: Record<string, string>;
  facts: AgentFacts;
  firstSeenMs: number;
  lastSeenMs: number;
  /** Highest message seq from this agent applied to the state. */
  appliedSeq: number;
  /** The agent's state-dir identity; a new one restarts its sequence space. */
  instanceId: string;
  draining: boolean;
}

/** One stored version of a workflow document in the registry. */
export interface WorkflowVersion {
  name: string;
  version: number;
  /** SHA-256 of the source text. */
  hash: string;
  source: string;
  filename: string;
  description: string;
  createdMs: number;
}

/**
 * A registered network device (`drover device add`). `credential` is a
 * reference the proxy agents resolve locally; no secret is stored.
 */
export interface DeviceRecord extends FleetDevice {
  createdMs: number;
  updatedMs: number;
}

export type Role = 'viewer' | 'operator' | 'admin';

/**
 * An API token (`kind: api`, carries a role) or an enrollment token
 * (`kind: enroll`, trades for an agent certificate). Only the SHA-256 of the
 * secret is kept; the token itself is shown once, at creation.
 */
export interface TokenRecord {
  id: string;
  kind: 'api' | 'enroll';
  role: Role | '';
  description: string;
  /** API tokens: its holder's name (approvers name tokens by it); absent or '' for none (and in tokens made before names). */
  name?: string;
  secretHash: string;
  createdMs: number;
  /** 0: never. */
  expiresMs: number;
  /** Enrollment: agents it may enroll (0: any number until it expires). */
  uses: number;
  used: number;
  /** Enrollment: labels pinned on every agent enrolled with it. */
  labels: Record<string, string>;
  /** Enrollment: glob the agent name must match ('' = any). */
  namePattern: string;
  /** 0: not revoked. */
  revokedMs: number;
  lastUsedMs: number;
}

/**
 * One agent certificate the CA issued (or an enrollment waiting for
 * `drover agent approve`), keyed by `id`: the serial once issued, else
 * `pending:<name>`. A revoked serial stays here: it is the deny-list.
 */
export interface CredentialRecord {
  id: string;
  name: string;
  serial: string;
  state: 'pending' | 'active' | 'revoked';
  requestedMs: number;
  issuedMs: number;
  expiresMs: number;
  revokedMs: number;
  tokenId: string;
  /** SHA-256 (hex) of the agent's public key (SPKI DER). */
  fingerprint: string;
  labels: Record<string, string>;
  /** Pending only: the CSR to sign on approval. */
  csrPem: string;
  /** The certificate issued (public), so an agent polling after approval gets it. */
  certPem: string;
  /** NATS agents: the public key of the NATS user nkey the agent made ('' for gRPC agents). */
  natsPublicKey?: string;
}

/**
 * A named secret (`drover secret set`), sealed with the control plane's
 * secret key (AES-256-GCM, bound to its name): the store never holds a value
 * in clear.
 */
export interface SecretRecord {
  name: string;
  /** `v1.<iv>.<tag>.<ciphertext>`, base64url (security/secret-box.ts). */
  sealed: string;
  createdMs: number;
  updatedMs: number;
  /** Token id of the last writer. */
  updatedBy: string;
  version: number;
}

/**
 * An idempotency key a launch was made with (Runs.launch): a repeat of the
 * same workflow and key before `expiresMs` starts nothing and answers
 * `runId`, even once that run is pruned. Written in the same flush as the run.
 */
export interface LaunchKeyRecord {
  workflow: string;
  key: string;
  runId: string;
  /** SHA-256 of the bound params as the plan shows them (secret values masked): the same key with other params is refused. */
  paramsHash: string;
  createdMs: number;
  expiresMs: number;
}

/** The id a launch key is stored under (workflow names and keys hold no newline). */
export function launchKeyId(workflow: string, key: string): string {
  return `${workflow}\n${key}`;
}

/** A webhook delivery's signature that was accepted: the same one again before `expiresMs` is a replay. */
export interface SeenSignatureRecord {
  /** `<hook>:<sha256 of "<t>.<body>">`. */
  id: string;
  expiresMs: number;
}

/**
 * What the control plane keeps of one cron schedule (a workflow's cron
 * trigger, by its name): whether it is paused and what its fires did.
 * Written with each fire, in the same flush as the run it started.
 */
export interface ScheduleRecord {
  name: string;
  /** The workflow that declared it when this record was made. */
  workflow: string;
  /** `cron|timezone` it was planned with: another one starts afresh, from then on. */
  spec: string;
  paused: boolean;
  /** Fires at or before this were dealt with (started, refused or dropped). */
  cursorMs: number;
  /** The latest fire acted on (0: none yet). */
  lastFireMs: number;
  /** The run the latest fire started ('' if none). */
  lastRunId: string;
  /** What the latest fire did when it started no run, or what was dropped ('' when all went well). */
  lastMessage: string;
  /** Who paused or resumed it last (a token id), and when. */
  changedBy: string;
  changedMs: number;
}

/** Which of a run's log records a read returns; every field left out matches all. */
export interface LogFilter {
  /** That step's records, and notices of unreadable records that name no step (they are shown whatever step was asked for). */
  step?: string;
  /** Records of these attempts (`run/step/attempt/agent` ids). */
  attempts?: ReadonlySet<string>;
  stream?: LogRecord['stream'];
  /** Records at or after this time, ms. */
  since?: number;
}

/** Whether a log record passes a filter. */
export function logMatches(r: LogRecord, f: LogFilter): boolean {
  return (
    (f.step === undefined || r.step === f.step || r.step === '') &&
    (f.attempts === undefined || f.attempts.has(r.attempt)) &&
    (f.stream === undefined || r.stream === f.stream) &&
    (f.since === undefined || r.t >= f.since)
  );
}

/** Where a page of a run's log starts, how many records it holds at most, and which. */
export interface LogRead {
  /** 0 (the start), or the `next` of an earlier page of the same run. */
  from?: number;
  /** Default (and what the API uses): LOG_PAGE_RECORDS. */
  limit?: number;
  filter?: LogFilter;
}

/** Records a log page holds at most by default: with the bytes a page may read (store/log-files.ts), what one read holds in memory. */
export const LOG_PAGE_RECORDS = 1000;

/**
 * Consecutive records of a run's log, oldest first. Positions are opaque
 * numbers that only grow (a byte offset in the lowdb store's file, an index
 * in the memory store).
 */
export interface LogPage {
  records: LogRecord[];
  /** Where the next page starts. */
  next: number;
  /** The log's end when the page was read: `next` at `size` means nothing more is stored yet. */
  size: number;
}

/**
 * Whether the store's last write succeeded. Unhealthy: the error of the
 * last failed write (errno code and text), the directory, and since when;
 * the store retries by itself and becomes healthy with the first write that
 * succeeds.
 */
export type StoreHealth =
  | { healthy: true }
  | {
      healthy: false;
      dir: string;
      code: string;
      message: string;
      sinceMs: number;
      /** Where the state is written when that is not the data dir (`NATS JetStream stream DROVER_STATE`). */
      where?: string;
      /** How to fix it, when that is not "free space or fix the disk". */
      fix?: string;
    };

export interface Store {
  /**
   * Loads state; throws StoreError naming the file and the fix when it
   * cannot. Resolves to a description of any recovery it made, else ''.
   */
  open(): Promise<string | void>;
  getAgent(name: string): AgentRecord | undefined;
  listAgents(): AgentRecord[];
  putAgent(agent: AgentRecord): void;
  getRun(id: string): RunRecord | undefined;
  /** Newest first. */
  listRuns(): RunRecord[];
  /**
   * Marks a run changed. With `changedSteps`, only the run's own fields and
   * those steps changed, which a big run (a fan-out to thousands of agents)
   * makes much cheaper to write; without, all of it.
   */
  putRun(run: RunRecord, changedSteps?: readonly StepRecord[]): void;
  /** Every version of a workflow, oldest first; empty when unknown. */
  workflowVersions(name: string): WorkflowVersion[];
  /** Names of registered workflows. */
  workflowNames(): string[];
  putWorkflowVersion(v: WorkflowVersion): void;
  getDevice(name: string): DeviceRecord | undefined;
  /** Sorted by name. */
  listDevices(): DeviceRecord[];
  putDevice(device: DeviceRecord): void;
  /** Removes a device; false when there was none of that name. */
  deleteDevice(name: string): boolean;
  getToken(id: string): TokenRecord | undefined;
  listTokens(): TokenRecord[];
  putToken(token: TokenRecord): void;
  getCredential(id: string): CredentialRecord | undefined;
  listCredentials(): CredentialRecord[];
  putCredential(credential: CredentialRecord): void;
  deleteCredential(id: string): void;
  getSecret(name: string): SecretRecord | undefined;
  /** Sorted by name. */
  listSecrets(): SecretRecord[];
  putSecret(secret: SecretRecord): void;
  /** Removes a secret; false when there was none of that name. */
  deleteSecret(name: string): boolean;
  getLaunchKey(workflow: string, key: string): LaunchKeyRecord | undefined;
  putLaunchKey(rec: LaunchKeyRecord): void;
  deleteLaunchKey(workflow: string, key: string): void;
  getSeenSignature(id: string): SeenSignatureRecord | undefined;
  putSeenSignature(rec: SeenSignatureRecord): void;
  deleteSeenSignature(id: string): void;
  /** Drops launch keys and seen signatures whose `expiresMs` is at or before `nowMs`; returns how many went. */
  pruneExpired(nowMs: number): number;
  getSchedule(name: string): ScheduleRecord | undefined;
  /** Sorted by name. */
  listSchedules(): ScheduleRecord[];
  putSchedule(schedule: ScheduleRecord): void;
  /** Removes a schedule's record; false when there was none of that name. */
  deleteSchedule(name: string): boolean;
  /** Appends records of one agent message together: a crash stores all of them or none (the message's seq marks them stored). */
  appendLog(runId: string, ...records: LogRecord[]): void;
  /**
   * One page of a run's log from a position, the filter applied while
   * reading: at most `limit` records, and a bounded number of bytes read
   * (fewer records when the filter drops most), so a long log is served
   * page by page and never read whole. Records waiting for the disk are
   * included. Synchronous on purpose: every record appended after it returns
   * is at or after its `next`, so a reader that switches to live changes in
   * the same tick as a page that reached `size` misses none and repeats none.
   */
  readLogPage(runId: string, read?: LogRead): LogPage;
  /** Every log record of a run so far, read page by page (tests and tools; the API sends pages). */
  readLogs(runId: string): Promise<LogRecord[]>;
  /**
   * Per agent, the highest message seq whose lines are in the run's log,
   * read from what is stored (synchronously; the first call for a run after
   * a restart reads its file once, in bounded chunks). Log lines are
   * appended at once while the agent's applied seq is persisted with the
   * next state write, so after a crash between the two the agent resends
   * chunks that are already stored; this tells the control plane to skip
   * them. The map returned is the caller's.
   */
  storedLogSeqs(runId: string): Map<string, number>;
  /**
   * Records one sample of the fleet (kept FLEET_SAMPLE_RETENTION_MS before
   * the newest). Never throws: a disk that refuses it is logged and the
   * sample waits in memory for the next one. Not part of flush().
   */
  appendFleetSample(sample: FleetSample): void;
  /** Stored fleet samples with fromMs <= t <= toMs, oldest first. */
  fleetSamples(fromMs: number, toMs: number): FleetSample[];
  /**
   * Resolves once everything put so far is on disk; rejects with the error
   * of a write that failed (the store then retries by itself: ask again to
   * wait for the next try).
   */
  flush(): Promise<void>;
  health(): StoreHealth;
  /**
   * True while log records waiting for the disk are past their bound: take
   * no more agent messages (they wait in the agents' journals).
   */
  logBacklogFull(): boolean;
  /**
   * Forgets a run whose creation was never confirmed durable (its flush
   * failed); its deletion is recorded by the next write.
   */
  discardRun(id: string): void;
  close(): Promise<void>;
}

export class StoreError extends Error {
  override name = 'StoreError';
  readonly code = 'STORE_UNREADABLE';
}
