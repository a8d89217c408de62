/**
 * The in-memory state document that the document stores share (the lowdb
 * store in the data dir, the JetStream store on NATS): the records, what
 * changed since the last write (dirty sets), the change records a write
 * carries (`drain`, one JSON line per change) and how a change is applied
 * again when the state is loaded (`replay`). A backend subclass decides only
 * where batches and whole documents go and how a write is retried. Run logs
 * and fleet samples are kept in the local data dir by both; the JetStream
 * store also keeps them in streams, the local files being its read cache.
 *
 * Why one module: the order of the change records (runs before their launch
 * keys and schedules) is what makes a torn batch safe, and replay must stay
 * the exact inverse of drain; two copies would drift.
 */
import { join } from 'node:path';
import type { Logger } from '../log.js';
import type { Disk } from './disk.js';
import { LogFiles } from './log-files.js';
import { FleetSampleFile, type FleetSample } from './fleet-samples.js';
import { launchKeyId, TERMINAL_RUN, type AgentRecord, type LaunchKeyRecord, type SeenSignatureRecord, type CredentialRecord, type DeviceRecord, type SecretRecord, type TokenRecord, type LogRead, type LogRecord, type RunRecord, type ScheduleRecord, type StepRecord, type WorkflowVersion } from './store.js';

/** The whole state, as a snapshot holds it. */
export interface Doc {
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

export type RunHeader = Omit<RunRecord, 'plan' | 'steps'>;

/** One change record: a line of a change batch. */
export type Change =
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

/** An empty state document. */
export function emptyDoc(): Doc {
  return { version: 1, agents: {}, runs: {}, workflows: {} };
}

export interface DocumentStoreOptions {
  /** Holds the run logs (logs/) and fleet samples (fleet-samples.ndjson). */
  dataDir: string;
  disk: Disk;
  log?: Logger;
  /** Finished runs kept (with their logs); older ones are pruned. */
  maxRuns: number;
}

/**
 * Everything of a Store but where its changes go: a subclass implements
 * `touch` (a change was made: schedule a write), open, flush, health and
 * close, and writes what `drain` returns.
 */
export abstract class DocumentStore {
  protected doc: Doc = emptyDoc();
  protected readonly logs: LogFiles;
  /** The fleet sample history, in its own file: not state, so never in the document or its change batches. */
  protected readonly samples: FleetSampleFile;
  protected readonly maxRuns: number;

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

  /** Runs newest first, kept sorted as runs come and go (undefined: sort again). */
  private sorted: RunRecord[] | undefined;
  private runCount = 0;

  constructor(opts: DocumentStoreOptions) {
    const warn = (fields: Record<string, unknown>, msg: string) => opts.log?.warn(fields, msg);
    this.logs = new LogFiles(join(opts.dataDir, 'logs'), { disk: opts.disk, warn });
    this.samples = new FleetSampleFile(join(opts.dataDir, 'fleet-samples.ndjson'), { disk: opts.disk, warn });
    this.maxRuns = opts.maxRuns;
  }

  /** A change was made: the subclass schedules a write. */
  protected abstract touch(): void;

  /** Takes `doc` as the state (just loaded), filling tables older documents lack. */
  protected adopt(doc: Doc) {
    doc.workflows ??= {};
    doc.devices ??= {};
    doc.tokens ??= {};
    doc.credentials ??= {};
    doc.secrets ??= {};
    doc.launchKeys ??= {};
    doc.signatures ??= {};
    doc.schedules ??= {};
    this.doc = doc;
    this.recount();
  }

  /** Counts the runs again (after changes were replayed onto the document). */
  protected recount() {
    this.runCount = Object.keys(this.doc.runs).length;
    this.sorted = undefined;
  }

  logBacklogFull(): boolean {
    return this.logs.backlogFull;
  }

  getAgent(name: string) {
    return this.doc.agents[name];
  }
  listAgents() {
    return Object.values(this.doc.agents);
  }
  putAgent(agent: AgentRecord) {
    this.doc.agents[agent.name] = agent;
    this.dirtyAgents.add(agent.name);
    this.touch();
  }
  getRun(id: string) {
    return this.doc.runs[id];
  }
  listRuns() {
    this.sorted ??= Object.values(this.doc.runs).sort(newestFirst);
    return this.sorted.slice();
  }
  putRun(run: RunRecord, changedSteps?: readonly StepRecord[]) {
    const known = this.doc.runs[run.id];
    if (known !== run) {
      if (!known) this.runCount++;
      this.doc.runs[run.id] = run;
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
    return [...(this.doc.workflows[name] ?? [])];
  }
  workflowNames() {
    return Object.keys(this.doc.workflows).sort();
  }
  putWorkflowVersion(v: WorkflowVersion) {
    (this.doc.workflows[v.name] ??= []).push(v);
    this.newVersions.push(v);
    this.touch();
  }
  getToken(id: string) {
    return this.doc.tokens?.[id];
  }
  listTokens() {
    return Object.values(this.doc.tokens ?? {});
  }
  putToken(token: TokenRecord) {
    (this.doc.tokens ??= {})[token.id] = token;
    this.dirtyTokens.add(token.id);
    this.touch();
  }
  getCredential(id: string) {
    return this.doc.credentials?.[id];
  }
  listCredentials() {
    return Object.values(this.doc.credentials ?? {});
  }
  putCredential(credential: CredentialRecord) {
    (this.doc.credentials ??= {})[credential.id] = credential;
    this.dirtyCredentials.set(credential.id, credential);
    this.touch();
  }
  deleteCredential(id: string) {
    if (!this.doc.credentials?.[id]) return;
    delete this.doc.credentials[id];
    this.dirtyCredentials.set(id, null);
    this.touch();
  }
  getSecret(name: string) {
    return this.doc.secrets?.[name];
  }
  listSecrets() {
    return Object.values(this.doc.secrets ?? {}).sort((a, b) => a.name.localeCompare(b.name));
  }
  putSecret(secret: SecretRecord) {
    (this.doc.secrets ??= {})[secret.name] = secret;
    this.dirtySecrets.set(secret.name, secret);
    this.touch();
  }
  deleteSecret(name: string) {
    const secrets = this.doc.secrets ?? {};
    if (!secrets[name]) return false;
    delete secrets[name];
    this.dirtySecrets.set(name, null);
    this.touch();
    return true;
  }
  getDevice(name: string) {
    return this.doc.devices?.[name];
  }
  listDevices() {
    return Object.values(this.doc.devices ?? {}).sort((a, b) => a.name.localeCompare(b.name));
  }
  putDevice(device: DeviceRecord) {
    (this.doc.devices ??= {})[device.name] = device;
    this.dirtyDevices.set(device.name, device);
    this.touch();
  }
  deleteDevice(name: string) {
    const devices = this.doc.devices ?? {};
    if (!devices[name]) return false;
    delete devices[name];
    this.dirtyDevices.set(name, null);
    this.touch();
    return true;
  }
  getLaunchKey(workflow: string, key: string) {
    return this.doc.launchKeys?.[launchKeyId(workflow, key)];
  }
  putLaunchKey(rec: LaunchKeyRecord) {
    const id = launchKeyId(rec.workflow, rec.key);
    (this.doc.launchKeys ??= {})[id] = rec;
    this.dirtyLaunchKeys.set(id, rec);
    this.touch();
  }
  deleteLaunchKey(workflow: string, key: string) {
    const id = launchKeyId(workflow, key);
    if (!this.doc.launchKeys?.[id]) return;
    delete this.doc.launchKeys[id];
    this.dirtyLaunchKeys.set(id, null);
    this.touch();
  }
  getSeenSignature(id: string) {
    return this.doc.signatures?.[id];
  }
  putSeenSignature(rec: SeenSignatureRecord) {
    (this.doc.signatures ??= {})[rec.id] = rec;
    this.dirtySignatures.set(rec.id, rec);
    this.touch();
  }
  deleteSeenSignature(id: string) {
    if (!this.doc.signatures?.[id]) return;
    delete this.doc.signatures[id];
    this.dirtySignatures.set(id, null);
    this.touch();
  }
  pruneExpired(nowMs: number) {
    let n = 0;
    for (const [table, dirty] of [
      [this.doc.launchKeys ?? {}, this.dirtyLaunchKeys],
      [this.doc.signatures ?? {}, this.dirtySignatures],
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
    return this.doc.schedules?.[name];
  }
  listSchedules() {
    return Object.values(this.doc.schedules ?? {}).sort((a, b) => a.name.localeCompare(b.name));
  }
  putSchedule(schedule: ScheduleRecord) {
    (this.doc.schedules ??= {})[schedule.name] = schedule;
    this.dirtySchedules.set(schedule.name, schedule);
    this.touch();
  }
  deleteSchedule(name: string) {
    const schedules = this.doc.schedules ?? {};
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

  /**
   * Forgets a run whose creation was never confirmed (its write failed). A
   * failed write may still have left part of it on disk (a batch whose cut
   * failed, a document renamed before its folder's fsync failed), so the
   * next write records the deletion.
   */
  discardRun(id: string) {
    if (!this.doc.runs[id]) return;
    delete this.doc.runs[id];
    this.runCount--;
    this.sorted = undefined;
    this.dirtyRuns.delete(id);
    this.deletedRuns.add(id);
    this.touch();
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

  protected replay(c: Change) {
    const data = this.doc;
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
  protected drain(): string {
    const lines: string[] = [];
    const line = (c: Change) => lines.push(JSON.stringify(c));
    const { agents, runs } = this.doc;
    for (const name of this.dirtyAgents) if (agents[name]) line(['agent', agents[name]]);
    for (const v of this.newVersions) line(['workflow', v]);
    for (const [name, d] of this.dirtyDevices) line(d ? ['device', d] : ['deleteDevice', name]);
    for (const id of this.dirtyTokens) if (this.doc.tokens?.[id]) line(['token', this.doc.tokens[id]]);
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

  /** A pruned run's log goes (the JetStream store also purges it from its stream once the deletion is durable). */
  protected forgetLog(runId: string) {
    this.logs.remove(runId);
  }

  /** Drops the oldest finished runs beyond maxRuns, and their logs. */
  protected prune() {
    if (this.runCount <= this.maxRuns) return;
    const runs = Object.values(this.doc.runs);
    const finished = runs.filter((r) => TERMINAL_RUN.has(r.status)).sort((a, b) => a.createdMs - b.createdMs);
    const excess = runs.length - this.maxRuns;
    for (const r of finished.slice(0, excess)) {
      delete this.doc.runs[r.id];
      this.dirtyRuns.delete(r.id);
      this.deletedRuns.add(r.id);
      this.forgetLog(r.id);
      this.runCount--;
    }
    this.sorted = undefined;
  }
}

function newestFirst(a: RunRecord, b: RunRecord): number {
  return b.createdMs - a.createdMs || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}
