/**
 * The embedded default Store: one JSON document (lowdb) in the data dir, a
 * change log next to it, and per-run log files.
 *
 * Puts mark records dirty; one write at a time runs, at most every
 * `coalesceMs`, carrying every change made before it started. A write
 * appends only what changed — an agent, a run's own fields, the steps that
 * changed, a new workflow version — to the change log and fdatasyncs it, so
 * its cost follows the size of the change, not the size of the state. The
 * document itself (temp file, fsync, rename: DurableJsonFile) is rewritten
 * only once the log has grown past it, and on open and close; each rewrite
 * starts a new log generation. Loading reads the document and replays the
 * logs of its generation and later.
 *
 * Why: rewriting the whole document on every coalesced write made every
 * acknowledged agent message cost a serialisation of the whole state (every
 * agent, every kept run with its plan), which is what a fleet-scale fan-out
 * spent most of its time on (docs/performance.md).
 *
 * A write that fails (a full, read-only or failing disk) makes the store
 * unhealthy: its flush waiters are told, nothing is lost from memory, and it
 * tries again by itself, RETRY_MIN_MS doubling to RETRY_MAX_MS, until a
 * write succeeds; flushes asked for meanwhile wait for those tries.
 */
import { join } from 'node:path';
import { Low } from 'lowdb';
import type { Logger } from '../log.js';
import { ChangeLog, changeLogFile } from './change-log.js';
import { describeError, nodeDisk, type Disk } from './disk.js';
import { DurableJsonFile } from './durable-json-file.js';
import { LogFiles } from './log-files.js';
import { FleetSampleFile, type FleetSample } from './fleet-samples.js';
import { launchKeyId, TERMINAL_RUN, type AgentRecord, type LaunchKeyRecord, type SeenSignatureRecord, type CredentialRecord, type DeviceRecord, type SecretRecord, type StoreHealth, type TokenRecord, type LogRead, type LogRecord, type RunRecord, type ScheduleRecord, type StepRecord, type Store, type WorkflowVersion } from './store.js';

interface Doc {
  version: 1;
  agents: Record<string, AgentRecord>;
  runs: Record<string, RunRecord>;
  workflows: Record<string, WorkflowVersion[]>;
  /** The device inventory (absent in documents written before it existed). */
  devices?: Record<string, DeviceRecord>;
  /** API and enrollment tokens (hashes only) and agent certificates (absent before they existed). */
  tokens?: Record<string, TokenRecord>;
  credentials?: Record<string, CredentialRecord>;
  /** Sealed secrets (absent before they existed). */
  secrets?: Record<string, SecretRecord>;
  /** Idempotency keys of launches, by launchKeyId (absent before they existed). */
  launchKeys?: Record<string, LaunchKeyRecord>;
  /** Webhook signatures accepted, remembered until their tolerance ends (absent before they existed). */
  signatures?: Record<string, SeenSignatureRecord>;
  /** Cron schedules' state (absent before schedules existed). */
  schedules?: Record<string, ScheduleRecord>;
  /** Change logs of this generation and later complete the document (absent: 0). */
  changeGen?: number;
}

type RunHeader = Omit<RunRecord, 'plan' | 'steps'>;

/** One line of the change log. */
type Change =
  | ['agent', AgentRecord]
  | ['run', RunRecord]
  | ['runFields', string, RunHeader]
  | ['step', string, StepRecord]
  | ['workflow', WorkflowVersion]
  | ['device', DeviceRecord]
  | ['deleteDevice', string]
  | ['token', TokenRecord]
  | ['credential', CredentialRecord]
  | ['deleteCredential', string]
  | ['secret', SecretRecord]
  | ['deleteSecret', string]
  | ['deleteRun', string]
  | ['launchKey', LaunchKeyRecord]
  | ['deleteLaunchKey', string]
  | ['signature', SeenSignatureRecord]
  | ['deleteSignature', string]
  | ['schedule', ScheduleRecord]
  | ['deleteSchedule', string];

export interface LowdbStoreOptions {
  dataDir: string;
  /** Delay that lets many changes share one write. */
  coalesceMs?: number;
  /** Finished runs kept (with their logs); older ones are pruned. */
  maxRuns?: number;
  /**
   * The document is rewritten once the change log is bigger than the
   * document and than this; a restart replays at most about this much.
   */
  compactMinBytes?: number;
  /** The file system (tests inject failures). */
  disk?: Disk;
  /** Write failures, recoveries and unreadable records are logged here. */
  log?: Logger;
  /** Told how long each durable write took (a batch: log files synced, change log or document written), in seconds. */
  onWrite?: (seconds: number) => void;
}

/** Default of `compactMinBytes`. */
const COMPACT_MIN_BYTES = 16 * 1024 * 1024;
/** After a failed write the store tries again after this, doubling each time up to RETRY_MAX_MS. */
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5_000;

export class LowdbStore implements Store {
  private db: Low<Doc>;
  private file: DurableJsonFile<Doc>;
  private readonly logBase: string;
  private log: ChangeLog | undefined;
  private logs: LogFiles;
  /** The fleet sample history, in its own file: not state, so never in the document or its change log. */
  private samples: FleetSampleFile;
  private changed = 0;
  private written = 0;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private waiters: { gen: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private readonly coalesceMs: number;
  private readonly maxRuns: number;
  private readonly compactMinBytes: number;
  private readonly dataDir: string;
  private readonly disk: Disk;
  private readonly logger: Logger | undefined;
  private readonly onWrite: ((seconds: number) => void) | undefined;
  private state: StoreHealth = { healthy: true };
  /** Wait before the next try of a failed write (0: healthy). */
  private retryMs = 0;
  private failedTries = 0;
  private closing = false;
  /** The generation of the document on disk: the logs it needs start there. */
  private diskGen = 0;

  // What the next write carries.
  private dirtyAgents = new Set<string>();
  /** Run id -> the steps that changed, or 'all' (a new run, or a put without steps). */
  private dirtyRuns = new Map<string, Set<string> | 'all'>();
  private newVersions: WorkflowVersion[] = [];
  /** Devices put (a record) or deleted (null) since the last write. */
  private dirtyDevices = new Map<string, DeviceRecord | null>();
  private dirtyTokens = new Set<string>();
  /** Credentials put (a record) or deleted (null) since the last write. */
  private dirtyCredentials = new Map<string, CredentialRecord | null>();
  /** Secrets put (a record) or deleted (null) since the last write. */
  private dirtySecrets = new Map<string, SecretRecord | null>();
  private deletedRuns = new Set<string>();
  /** Launch keys and seen signatures put (a record) or deleted (null) since the last write. */
  private dirtyLaunchKeys = new Map<string, LaunchKeyRecord | null>();
  private dirtySignatures = new Map<string, SeenSignatureRecord | null>();
  /** Schedules put (a record) or deleted (null) since the last write. */
  private dirtySchedules = new Map<string, ScheduleRecord | null>();
  /** Set after a failed write: the next write rewrites the document, which carries everything. */
  private snapshotDue = false;
  /** A batch drained from the dirty sets missed the change log: until a document is written, those changes are only in memory. */
  private unlogged = false;

  /** Runs newest first, kept sorted as runs come and go (undefined: sort again). */
  private sorted: RunRecord[] | undefined;
  private runCount = 0;

  constructor(opts: LowdbStoreOptions) {
    this.dataDir = opts.dataDir;
    this.disk = opts.disk ?? nodeDisk;
    this.logger = opts.log;
    this.onWrite = opts.onWrite;
    this.disk.mkdirSync(opts.dataDir, 0o700);
    this.file = new DurableJsonFile<Doc>(join(opts.dataDir, 'state.json'), this.disk);
    this.db = new Low<Doc>(this.file, { version: 1, agents: {}, runs: {}, workflows: {} });
    this.logBase = changeLogFile(opts.dataDir);
    this.logs = new LogFiles(join(opts.dataDir, 'logs'), { disk: this.disk, warn: (fields, msg) => this.logger?.warn(fields, msg) });
    this.samples = new FleetSampleFile(join(opts.dataDir, 'fleet-samples.ndjson'), { disk: this.disk, warn: (fields, msg) => this.logger?.warn(fields, msg) });
    this.coalesceMs = opts.coalesceMs ?? 10;
    this.maxRuns = opts.maxRuns ?? 1000;
    this.compactMinBytes = opts.compactMinBytes ?? COMPACT_MIN_BYTES;
  }

  /** Loads the state; returns a description when it had to recover from the backup, else ''. */
  async open(): Promise<string> {
    await this.db.read();
    this.samples.open();
    const fresh = this.file.bytes === 0;
    const data = this.db.data;
    data.workflows ??= {};
    data.devices ??= {};
    data.tokens ??= {};
    data.credentials ??= {};
    data.secrets ??= {};
    data.launchKeys ??= {};
    data.signatures ??= {};
    data.schedules ??= {};
    const gen = data.changeGen ?? 0;
    this.diskGen = gen;
    const gens = ChangeLog.generations(this.logBase, this.disk).filter((g) => g >= gen);
    let replayed = 0;
    let unreadable = 0;
    for (const g of gens) {
      const read = ChangeLog.read(this.logBase, g, this.disk);
      for (const change of read.changes) this.replay(change as Change);
      replayed += read.changes.length;
      unreadable += read.unreadable;
    }
    this.runCount = Object.keys(data.runs).length;
    this.log = new ChangeLog(this.logBase, Math.max(gen, ...gens), this.disk);
    // Start from a whole document: a new data dir, or logs replayed (a crash, or a recovery).
    // A disk that cannot take it now loses nothing (the logs it would replace stay): the next write tries again.
    if (fresh || replayed > 0 || this.file.recovered) await this.snapshot('');
    const notes: string[] = [];
    if (this.file.recovered) {
      notes.push(this.file.recovered, replayed ? `${replayed} changes logged after it were replayed on top.` : 'Changes after that generation are lost unless agents resend them.');
    }
    if (unreadable) notes.push(`${unreadable} unreadable line${unreadable === 1 ? '' : 's'} in the change logs (${this.logBase}.*) ${unreadable === 1 ? 'was' : 'were'} skipped; the state they changed may be older than it was.`);
    return notes.join(' ');
  }

  health(): StoreHealth {
    return this.state;
  }

  logBacklogFull(): boolean {
    return this.logs.backlogFull;
  }

  getAgent(name: string) {
    return this.db.data.agents[name];
  }
  listAgents() {
    return Object.values(this.db.data.agents);
  }
  putAgent(agent: AgentRecord) {
    this.db.data.agents[agent.name] = agent;
    this.dirtyAgents.add(agent.name);
    this.touch();
  }
  getRun(id: string) {
    return this.db.data.runs[id];
  }
  listRuns() {
    this.sorted ??= Object.values(this.db.data.runs).sort(newestFirst);
    return this.sorted.slice();
  }
  putRun(run: RunRecord, changedSteps?: readonly StepRecord[]) {
    const known = this.db.data.runs[run.id];
    if (known !== run) {
      if (!known) this.runCount++;
      this.db.data.runs[run.id] = run;
      this.deletedRuns.delete(run.id);
      this.insertSorted(run, known);
    }
    const dirty = this.dirtyRuns.get(run.id);
    if (!changedSteps || known !== run) this.dirtyRuns.set(run.id, 'all');
    else if (dirty !== 'all') {
      const set = dirty ?? new Set<string>();
      for (const s of changedSteps) set.add(s.id);
      this.dirtyRuns.set(run.id, set);
    }
    this.touch();
  }
  workflowVersions(name: string) {
    return [...(this.db.data.workflows[name] ?? [])];
  }
  workflowNames() {
    return Object.keys(this.db.data.workflows).sort();
  }
  putWorkflowVersion(v: WorkflowVersion) {
    (this.db.data.workflows[v.name] ??= []).push(v);
    this.newVersions.push(v);
    this.touch();
  }
  getToken(id: string) {
    return this.db.data.tokens?.[id];
  }
  listTokens() {
    return Object.values(this.db.data.tokens ?? {});
  }
  putToken(token: TokenRecord) {
    (this.db.data.tokens ??= {})[token.id] = token;
    this.dirtyTokens.add(token.id);
    this.touch();
  }
  getCredential(id: string) {
    return this.db.data.credentials?.[id];
  }
  listCredentials() {
    return Object.values(this.db.data.credentials ?? {});
  }
  putCredential(credential: CredentialRecord) {
    (this.db.data.credentials ??= {})[credential.id] = credential;
    this.dirtyCredentials.set(credential.id, credential);
    this.touch();
  }
  deleteCredential(id: string) {
    if (!this.db.data.credentials?.[id]) return;
    delete this.db.data.credentials[id];
    this.dirtyCredentials.set(id, null);
    this.touch();
  }
  getSecret(name: string) {
    return this.db.data.secrets?.[name];
  }
  listSecrets() {
    return Object.values(this.db.data.secrets ?? {}).sort((a, b) => a.name.localeCompare(b.name));
  }
  putSecret(secret: SecretRecord) {
    (this.db.data.secrets ??= {})[secret.name] = secret;
    this.dirtySecrets.set(secret.name, secret);
    this.touch();
  }
  deleteSecret(name: string) {
    const secrets = this.db.data.secrets ?? {};
    if (!secrets[name]) return false;
    delete secrets[name];
    this.dirtySecrets.set(name, null);
    this.touch();
    return true;
  }
  getDevice(name: string) {
    return this.db.data.devices?.[name];
  }
  listDevices() {
    return Object.values(this.db.data.devices ?? {}).sort((a, b) => a.name.localeCompare(b.name));
  }
  putDevice(device: DeviceRecord) {
    (this.db.data.devices ??= {})[device.name] = device;
    this.dirtyDevices.set(device.name, device);
    this.touch();
  }
  deleteDevice(name: string) {
    const devices = this.db.data.devices ?? {};
    if (!devices[name]) return false;
    delete devices[name];
    this.dirtyDevices.set(name, null);
    this.touch();
    return true;
  }
  getLaunchKey(workflow: string, key: string) {
    return this.db.data.launchKeys?.[launchKeyId(workflow, key)];
  }
  putLaunchKey(rec: LaunchKeyRecord) {
    const id = launchKeyId(rec.workflow, rec.key);
    (this.db.data.launchKeys ??= {})[id] = rec;
    this.dirtyLaunchKeys.set(id, rec);
    this.touch();
  }
  deleteLaunchKey(workflow: string, key: string) {
    const id = launchKeyId(workflow, key);
    if (!this.db.data.launchKeys?.[id]) return;
    delete this.db.data.launchKeys[id];
    this.dirtyLaunchKeys.set(id, null);
    this.touch();
  }
  getSeenSignature(id: string) {
    return this.db.data.signatures?.[id];
  }
  putSeenSignature(rec: SeenSignatureRecord) {
    (this.db.data.signatures ??= {})[rec.id] = rec;
    this.dirtySignatures.set(rec.id, rec);
    this.touch();
  }
  deleteSeenSignature(id: string) {
    if (!this.db.data.signatures?.[id]) return;
    delete this.db.data.signatures[id];
    this.dirtySignatures.set(id, null);
    this.touch();
  }
  pruneExpired(nowMs: number) {
    let n = 0;
    for (const [table, dirty] of [
      [this.db.data.launchKeys ?? {}, this.dirtyLaunchKeys],
      [this.db.data.signatures ?? {}, this.dirtySignatures],
    ] as [Record<string, { expiresMs: number }>, Map<string, unknown>][]) {
      for (const [id, r] of Object.entries(table)) {
        if (r.expiresMs > nowMs) continue;
        delete table[id];
        dirty.set(id, null);
        n++;
      }
    }
    if (n) this.touch();
    return n;
  }
  getSchedule(name: string) {
    return this.db.data.schedules?.[name];
  }
  listSchedules() {
    return Object.values(this.db.data.schedules ?? {}).sort((a, b) => a.name.localeCompare(b.name));
  }
  putSchedule(schedule: ScheduleRecord) {
    (this.db.data.schedules ??= {})[schedule.name] = schedule;
    this.dirtySchedules.set(schedule.name, schedule);
    this.touch();
  }
  deleteSchedule(name: string) {
    const schedules = this.db.data.schedules ?? {};
    if (!schedules[name]) return false;
    delete schedules[name];
    this.dirtySchedules.set(name, null);
    this.touch();
    return true;
  }
  appendLog(runId: string, ...records: LogRecord[]) {
    this.logs.append(runId, ...records);
    this.touch();
  }
  readLogPage(runId: string, read?: LogRead) {
    return this.logs.page(runId, read);
  }
  async readLogs(runId: string) {
    return this.logs.read(runId);
  }
  storedLogSeqs(runId: string) {
    return this.logs.seqs(runId);
  }
  appendFleetSample(sample: FleetSample) {
    this.samples.append(sample);
  }
  fleetSamples(fromMs: number, toMs: number) {
    return this.samples.range(fromMs, toMs);
  }

  /** While unhealthy, waits for the next scheduled try instead of starting one: the backoff holds however many wait. */
  flush(): Promise<void> {
    if (this.written >= this.changed) return Promise.resolve();
    const gen = this.changed;
    return new Promise((resolve, reject) => {
      this.waiters.push({ gen, resolve, reject });
      if (!this.state.healthy) return;
      clearTimeout(this.timer);
      this.timer = undefined;
      void this.writeLoop();
    });
  }

  /**
   * Forgets a run whose creation was never confirmed (its write failed). A
   * failed write may still have left part of it on disk (a batch whose cut
   * failed, a document renamed before its folder's fsync failed), so the
   * next write records the deletion.
   */
  discardRun(id: string) {
    if (!this.db.data.runs[id]) return;
    delete this.db.data.runs[id];
    this.runCount--;
    this.sorted = undefined;
    this.dirtyRuns.delete(id);
    this.deletedRuns.add(id);
    this.touch();
  }

  /** One last write, then a whole document if it can; a disk that still fails gives up here (nothing unwritten was acknowledged). */
  async close() {
    this.closing = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.writing;
    if (this.written < this.changed) await this.writeLoop();
    // Leave a whole document behind: the next start replays nothing.
    if (this.log && this.state.healthy && (this.log.size > 0 || this.snapshotDue)) await this.snapshot(this.drain()).catch(() => undefined);
    if (!this.state.healthy) this.logger?.error({ dir: this.dataDir, code: this.state.code }, 'closing with changes not written: the data dir still cannot be written; agents resend what was not acknowledged');
    this.settle(() => true, (w) => w.reject(new Error('the store was closed before this change was written')));
    this.log?.close();
    this.logs.close();
    await this.samples.close();
  }

  private insertSorted(run: RunRecord, replaced: RunRecord | undefined) {
    if (!this.sorted) return;
    if (replaced) {
      this.sorted = undefined;
      return;
    }
    // New runs are nearly always the newest: the search ends at once.
    let i = 0;
    while (i < this.sorted.length && newestFirst(this.sorted[i], run) < 0) i++;
    this.sorted.splice(i, 0, run);
  }

  private replay(c: Change) {
    const data = this.db.data;
    switch (c[0]) {
      case 'agent':
        data.agents[c[1].name] = c[1];
        break;
      case 'run':
        data.runs[c[1].id] = c[1];
        break;
      case 'runFields':
        if (data.runs[c[1]]) Object.assign(data.runs[c[1]], c[2]);
        break;
      case 'step':
        if (data.runs[c[1]]) data.runs[c[1]].steps[c[2].id] = c[2];
        break;
      case 'workflow': {
        const list = (data.workflows[c[1].name] ??= []);
        if (!list.some((v) => v.version === c[1].version)) list.push(c[1]);
        break;
      }
      case 'deleteRun':
        delete data.runs[c[1]];
        break;
      case 'device':
        (data.devices ??= {})[c[1].name] = c[1];
        break;
      case 'deleteDevice':
        if (data.devices) delete data.devices[c[1]];
        break;
      case 'token':
        (data.tokens ??= {})[c[1].id] = c[1];
        break;
      case 'credential':
        (data.credentials ??= {})[c[1].id] = c[1];
        break;
      case 'deleteCredential':
        if (data.credentials) delete data.credentials[c[1]];
        break;
      case 'secret':
        (data.secrets ??= {})[c[1].name] = c[1];
        break;
      case 'deleteSecret':
        if (data.secrets) delete data.secrets[c[1]];
        break;
      case 'launchKey':
        (data.launchKeys ??= {})[launchKeyId(c[1].workflow, c[1].key)] = c[1];
        break;
      case 'deleteLaunchKey':
        if (data.launchKeys) delete data.launchKeys[c[1]];
        break;
      case 'signature':
        (data.signatures ??= {})[c[1].id] = c[1];
        break;
      case 'deleteSignature':
        if (data.signatures) delete data.signatures[c[1]];
        break;
      case 'schedule':
        (data.schedules ??= {})[c[1].name] = c[1];
        break;
      case 'deleteSchedule':
        if (data.schedules) delete data.schedules[c[1]];
        break;
    }
  }

  /** The change-log lines for everything dirty; clears the dirty sets. */
  private drain(): string {
    const lines: string[] = [];
    const line = (c: Change) => lines.push(JSON.stringify(c));
    const { agents, runs } = this.db.data;
    for (const name of this.dirtyAgents) if (agents[name]) line(['agent', agents[name]]);
    for (const v of this.newVersions) line(['workflow', v]);
    for (const [name, d] of this.dirtyDevices) line(d ? ['device', d] : ['deleteDevice', name]);
    for (const id of this.dirtyTokens) if (this.db.data.tokens?.[id]) line(['token', this.db.data.tokens[id]]);
    for (const [id, c] of this.dirtyCredentials) line(c ? ['credential', c] : ['deleteCredential', id]);
    for (const [name, x] of this.dirtySecrets) line(x ? ['secret', x] : ['deleteSecret', name]);
    for (const [id, what] of this.dirtyRuns) {
      const run = runs[id];
      if (!run) continue;
      if (what === 'all') {
        line(['run', run]);
        continue;
      }
      const { plan: _plan, steps, ...fields } = run;
      line(['runFields', id, fields]);
      for (const stepId of what) if (steps[stepId]) line(['step', id, steps[stepId]]);
    }
    for (const id of this.deletedRuns) line(['deleteRun', id]);
    // After the runs: a write torn by a crash that kept a key kept its run too (Runs.resume re-makes a key a torn write lost).
    for (const [id, k] of this.dirtyLaunchKeys) line(k ? ['launchKey', k] : ['deleteLaunchKey', id]);
    for (const [id, x] of this.dirtySignatures) line(x ? ['signature', x] : ['deleteSignature', id]);
    // After the runs: a torn batch that lost a schedule's fire but kept its run fires again under the same idempotency key, which starts nothing.
    for (const [name, x] of this.dirtySchedules) line(x ? ['schedule', x] : ['deleteSchedule', name]);
    this.dirtyAgents.clear();
    this.dirtyRuns.clear();
    this.newVersions = [];
    this.dirtyDevices.clear();
    this.dirtyTokens.clear();
    this.dirtyCredentials.clear();
    this.dirtySecrets.clear();
    this.deletedRuns.clear();
    this.dirtyLaunchKeys.clear();
    this.dirtySignatures.clear();
    this.dirtySchedules.clear();
    return lines.length ? `${lines.join('\n')}\n` : '';
  }

  /**
   * Rewrites the document as a new generation. `batch` (drained in the same
   * tick as the document is serialised) also goes to the current log, so the
   * previous document plus the logs since it stays a complete state: that is
   * what a recovery from `state.json.bak` loads.
   */
  private async snapshot(batch: string) {
    const log = this.log!;
    const previousGen = this.diskGen;
    const next = new ChangeLog(this.logBase, log.generation + 1, this.disk);
    this.db.data.changeGen = next.generation;
    // Serialised now, synchronously (DurableJsonFile.write stringifies before its first await).
    const doc = this.db.write();
    const [appended, wrote] = await Promise.allSettled([log.append(batch), doc]);
    // From here on changes go to the new generation, whatever happened: the
    // document on disk is either the old one (whose logs are all kept) or the new one.
    log.close();
    this.log = next;
    if (wrote.status === 'fulfilled') {
      this.snapshotDue = false;
      this.unlogged = false;
      this.diskGen = next.generation;
      // The document replaced is now state.json.bak; it needs its logs, older ones are done.
      for (const g of ChangeLog.generations(this.logBase, this.disk)) if (g < previousGen) ChangeLog.remove(this.logBase, g, this.disk);
      return;
    }
    this.snapshotDue = true;
    if (appended.status === 'rejected') this.unlogged = true;
    // Changes no log holds are only in memory: without the document this write did not make them durable.
    if (this.unlogged) throw wrote.reason;
  }

  private touch() {
    this.changed++;
    if (!this.timer && !this.writing && !this.closing) this.timer = setTimeout(() => void this.writeLoop(), this.coalesceMs);
  }

  /** A write failed: unhealthy (said once per error code), and the next try is scheduled. */
  private failed(err: unknown) {
    const { code, message } = describeError(err);
    this.failedTries++;
    this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs ? this.retryMs * 2 : RETRY_MIN_MS);
    const was = this.state;
    if (was.healthy || was.code !== code) {
      this.state = { healthy: false, dir: this.dataDir, code, message, sinceMs: was.healthy ? Date.now() : was.sinceMs };
      this.logger?.error(
        { dir: this.dataDir, code, err: message, pendingLogBytes: this.logs.pendingBytes },
        `cannot write the data dir ${this.dataDir} (${code}: ${message}); new runs are refused and agents' messages stay unacknowledged until a write succeeds; retrying by itself`,
      );
    } else this.logger?.debug({ dir: this.dataDir, code, tries: this.failedTries, retryInMs: this.retryMs }, 'state write failed again');
    if (this.logs.backlogFull) {
      this.logger?.error({ pendingLogBytes: this.logs.pendingBytes }, 'log records waiting for the disk passed their bound; agents are asked to keep new messages in their journals until writes succeed');
    }
  }

  private recovered() {
    if (this.state.healthy) return;
    this.logger?.info({ dir: this.dataDir, code: this.state.code, tries: this.failedTries, downMs: Date.now() - this.state.sinceMs }, 'the data dir can be written again; taking new runs and acknowledging agents again');
    this.state = { healthy: true };
    this.retryMs = 0;
    this.failedTries = 0;
  }

  private async writeLoop() {
    this.timer = undefined;
    if (this.writing) return this.writing;
    let failed = false;
    this.writing = (async () => {
      while (this.written < this.changed) {
        const gen = this.changed;
        const started = performance.now();
        try {
          this.prune();
          await this.logs.sync();
          const batch = this.drain();
          const log = this.log!;
          if (this.snapshotDue || log.size + batch.length > Math.max(this.compactMinBytes, this.file.bytes)) await this.snapshot(batch);
          else {
            try {
              await log.append(batch);
            } catch (err) {
              // What the batch held is no longer marked dirty: the next write rewrites the document.
              this.snapshotDue = true;
              this.unlogged = true;
              throw err;
            }
          }
          this.written = gen;
          this.onWrite?.((performance.now() - started) / 1000);
          this.recovered();
          this.settle((w) => w.gen <= gen, (w) => w.resolve());
        } catch (err) {
          failed = true;
          this.failed(err);
          this.settle(() => true, (w) => w.reject(err));
          break;
        }
      }
    })();
    try {
      await this.writing;
    } finally {
      this.writing = undefined;
      // Changes made while the last write was finishing start the next one:
      // at once when someone waits for them (a flush that found this write
      // busy), else after the coalescing delay. After a failure, after the
      // retry delay, whoever waits.
      clearTimeout(this.timer);
      this.timer = undefined;
      if (this.closing || this.written >= this.changed) {
        // nothing to do
      } else if (failed) this.timer = setTimeout(() => void this.writeLoop(), this.retryMs);
      else if (this.waiters.length) void this.writeLoop();
      else this.timer = setTimeout(() => void this.writeLoop(), this.coalesceMs);
    }
  }

  private settle(pick: (w: (typeof this.waiters)[number]) => boolean, act: (w: (typeof this.waiters)[number]) => void) {
    const done = this.waiters.filter(pick);
    this.waiters = this.waiters.filter((w) => !pick(w));
    done.forEach(act);
  }

  /** Drops the oldest finished runs beyond maxRuns, and their logs. */
  private prune() {
    if (this.runCount <= this.maxRuns) return;
    const runs = Object.values(this.db.data.runs);
    const finished = runs.filter((r) => TERMINAL_RUN.has(r.status)).sort((a, b) => a.createdMs - b.createdMs);
    const excess = runs.length - this.maxRuns;
    for (const r of finished.slice(0, excess)) {
      delete this.db.data.runs[r.id];
      this.dirtyRuns.delete(r.id);
      this.deletedRuns.add(r.id);
      this.logs.remove(r.id);
      this.runCount--;
    }
    this.sorted = undefined;
  }
}

function newestFirst(a: RunRecord, b: RunRecord): number {
  return b.createdMs - a.createdMs || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}
