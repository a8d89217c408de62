import type { AuditRecordOut, VerifyAuditResponseOut } from '../proto/index.js';
import type { Connection } from './connection.js';

/** One audit record: who did what, when, from where, with what result. */
export interface AuditRecord {
  seq: number;
  time: Date;
  /** token, agent, enroll-token, anonymous or system. */
  actorKind: string;
  /** Token id, agent name, or '' for an anonymous caller. */
  actor: string;
  /** `Service/Method` for API calls; `secret.read` and the like for the rest. */
  action: string;
  target: string;
  from: string;
  /** "ok" or an error code. */
  result: string;
  detail: Record<string, string>;
  /** The record as stored: one JSON line. */
  line: string;
}

export interface ListAuditOptions {
  since?: Date;
  /** A token id or agent name. */
  actor?: string;
  /** An action prefix, e.g. "RunService/" or "secret.". */
  action?: string;
  /** The most recent this many (default 1000). */
  limit?: number;
}

export interface AuditVerification {
  ok: boolean;
  records: number;
  /** Each break of the chain, with the 1-based line of the file it is on. */
  problems: { line: number; message: string }[];
  file: string;
}

/** The control plane's append-only, hash-chained audit log (admin role). */
export class AuditApi {
  /** @internal */
  constructor(private readonly conn: Connection) {}

  async list(options: ListAuditOptions = {}): Promise<AuditRecord[]> {
    const req = { sinceMs: options.since?.getTime() ?? 0, actor: options.actor ?? '', action: options.action ?? '', limit: options.limit ?? 0 };
    const res = await this.conn.unary<{ records: AuditRecordOut[] }>((cb) => this.conn.audit.listAudit(req, cb));
    return res.records.map((r) => ({ ...r, time: new Date(r.timeMs), detail: { ...r.detail } }));
  }

  /** Re-reads the whole log on the server and checks every link of its chain. */
  async verify(): Promise<AuditVerification> {
    const r = await this.conn.unary<VerifyAuditResponseOut>((cb) => this.conn.audit.verifyAudit({}, cb));
    return { ok: r.ok, records: r.records, problems: r.problems.map((p) => ({ line: p.line, message: p.message })), file: r.file };
  }
}
