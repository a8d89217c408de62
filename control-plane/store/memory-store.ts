/** A Store that keeps everything in memory: for tests and throwaway servers. */
import { SampleWindow, type FleetSample } from './fleet-samples.js';
import { launchKeyId, LOG_PAGE_RECORDS, logMatches, type AgentRecord, type CredentialRecord, type LaunchKeyRecord, type SeenSignatureRecord, type DeviceRecord, type SecretRecord, type TokenRecord, type LogPage, type LogRead, type LogRecord, type RunRecord, type ScheduleRecord, type Store, type StoreHealth, type WorkflowVersion } from './store.js';

export class MemoryStore implements Store {
  private agents = new Map<string, AgentRecord>();
  private runs = new Map<string, RunRecord>();
  private logs = new Map<string, LogRecord[]>();
  private workflows = new Map<string, WorkflowVersion[]>();
  private devices = new Map<string, DeviceRecord>();
  private tokens = new Map<string, TokenRecord>();
  private credentials = new Map<string, CredentialRecord>();
  private secrets = new Map<string, SecretRecord>();
  private schedules = new Map<string, ScheduleRecord>();
  private samples = new SampleWindow();
  private launchKeys = new Map<string, LaunchKeyRecord>();
  private signatures = new Map<string, SeenSignatureRecord>();

  async open() {}
  getAgent(name: string) {
    return this.agents.get(name);
  }
  listAgents() {
    return [...this.agents.values()];
  }
  putAgent(agent: AgentRecord) {
    this.agents.set(agent.name, agent);
  }
  getRun(id: string) {
    return this.runs.get(id);
  }
  listRuns() {
    return [...this.runs.values()].sort((a, b) => b.createdMs - a.createdMs || (a.id < b.id ? 1 : -1));
  }
  putRun(run: RunRecord) {
    this.runs.set(run.id, run);
  }
  workflowVersions(name: string) {
    return [...(this.workflows.get(name) ?? [])];
  }
  workflowNames() {
    return [...this.workflows.keys()].sort();
  }
  putWorkflowVersion(v: WorkflowVersion) {
    this.workflows.set(v.name, [...(this.workflows.get(v.name) ?? []), v]);
  }
  getToken(id: string) {
    return this.tokens.get(id);
  }
  listTokens() {
    return [...this.tokens.values()];
  }
  putToken(token: TokenRecord) {
    this.tokens.set(token.id, token);
  }
  getCredential(id: string) {
    return this.credentials.get(id);
  }
  listCredentials() {
    return [...this.credentials.values()];
  }
  putCredential(credential: CredentialRecord) {
    this.credentials.set(credential.id, credential);
  }
  deleteCredential(id: string) {
    this.credentials.delete(id);
  }
  getDevice(name: string) {
    return this.devices.get(name);
  }
  listDevices() {
    return [...this.devices.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
  putDevice(device: DeviceRecord) {
    this.devices.set(device.name, device);
  }
  deleteDevice(name: string) {
    return this.devices.delete(name);
  }
  getSecret(name: string) {
    return this.secrets.get(name);
  }
  listSecrets() {
    return [...this.secrets.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
  putSecret(secret: SecretRecord) {
    this.secrets.set(secret.name, secret);
  }
  deleteSecret(name: string) {
    return this.secrets.delete(name);
  }
  getLaunchKey(workflow: string, key: string) {
    return this.launchKeys.get(launchKeyId(workflow, key));
  }
  putLaunchKey(rec: LaunchKeyRecord) {
    this.launchKeys.set(launchKeyId(rec.workflow, rec.key), rec);
  }
  deleteLaunchKey(workflow: string, key: string) {
    this.launchKeys.delete(launchKeyId(workflow, key));
  }
  getSeenSignature(id: string) {
    return this.signatures.get(id);
  }
  putSeenSignature(rec: SeenSignatureRecord) {
    this.signatures.set(rec.id, rec);
  }
  deleteSeenSignature(id: string) {
    this.signatures.delete(id);
  }
  pruneExpired(nowMs: number) {
    let n = 0;
    for (const m of [this.launchKeys, this.signatures] as Map<string, { expiresMs: number }>[]) {
      for (const [id, r] of m) if (r.expiresMs <= nowMs && m.delete(id)) n++;
    }
    return n;
  }
  getSchedule(name: string) {
    return this.schedules.get(name);
  }
  listSchedules() {
    return [...this.schedules.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
  putSchedule(schedule: ScheduleRecord) {
    this.schedules.set(schedule.name, schedule);
  }
  deleteSchedule(name: string) {
    return this.schedules.delete(name);
  }
  appendLog(runId: string, ...records: LogRecord[]) {
    const list = this.logs.get(runId) ?? [];
    list.push(...records);
    this.logs.set(runId, list);
  }
  /** Positions are indexes in the run's list. */
  readLogPage(runId: string, read: LogRead = {}): LogPage {
    const all = this.logs.get(runId) ?? [];
    const limit = Math.max(1, read.limit ?? LOG_PAGE_RECORDS);
    const records: LogRecord[] = [];
    let next = read.from ?? 0;
    for (; next < all.length && records.length < limit; next++) if (logMatches(all[next], read.filter ?? {})) records.push(all[next]);
    return { records, next, size: all.length };
  }
  async readLogs(runId: string) {
    return [...(this.logs.get(runId) ?? [])];
  }
  storedLogSeqs(runId: string) {
    const seqs = new Map<string, number>();
    for (const r of (this.logs.get(runId) ?? [])) if (r.seq && r.seq > (seqs.get(r.agent) ?? 0)) seqs.set(r.agent, r.seq);
    return seqs;
  }
  appendFleetSample(sample: FleetSample) {
    this.samples.add(sample);
  }
  fleetSamples(fromMs: number, toMs: number) {
    return this.samples.range(fromMs, toMs);
  }
  async flush() {}
  health(): StoreHealth {
    return { healthy: true };
  }
  logBacklogFull() {
    return false;
  }
  discardRun(id: string) {
    this.runs.delete(id);
    this.logs.delete(id);
  }
  async close() {}
}
