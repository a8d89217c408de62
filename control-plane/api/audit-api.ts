/** AuditService: read and verify the audit log (admin role). */
import type { AuditServiceHandlers } from '../../proto/index.js';
import type { AuditLog } from '../security/audit.js';
import { unary } from './grpc-errors.js';

export function auditService(audit: AuditLog): AuditServiceHandlers {
  return {
    ListAudit: unary(async (req) => ({
      records: (await audit.list({ sinceMs: req.sinceMs, actor: req.actor, actionPrefix: req.action, limit: req.limit })).map(({ record: r, line }) => ({
        seq: r.seq,
        timeMs: Date.parse(r.time),
        actorKind: r.actor?.kind ?? '',
        actor: r.actor?.id ?? '',
        action: r.action ?? '',
        target: r.target ?? '',
        from: r.from ?? '',
        result: r.result ?? '',
        detail: r.detail ?? {},
        line,
      })),
    })),
    VerifyAudit: unary(async () => {
      const res = await audit.verify();
      return { ok: res.problems.length === 0, records: res.records, problems: res.problems, file: audit.file };
    }),
  };
}
