/** Tables of tokens and agent credentials. */
import type { AgentCredential, TokenInfo } from '../../access.js';
import { formatAgo, formatLabels } from '../format.js';
import { renderTable } from '../table.js';

function until(d: Date | undefined, now: number): string {
  if (!d) return 'never';
  const ms = d.getTime() - now;
  return ms <= 0 ? `expired ${formatAgo(d.getTime(), now)}` : `in ${formatAgo(now - ms, now).replace(/ ago$/, '')}`;
}

export function tokensTable(tokens: TokenInfo[], now = Date.now()): string {
  if (!tokens.length) return 'no tokens\n';
  return renderTable(
    ['ID', 'KIND', 'ROLE', 'STATE', 'EXPIRES', 'USES', 'LIMITS', 'DESCRIPTION'],
    tokens.map((t) => {
      const state = t.revokedAt ? 'revoked' : t.expiresAt && t.expiresAt.getTime() <= now ? 'expired' : t.kind === 'enroll' && t.uses && t.used >= t.uses ? 'used up' : 'valid';
      const limits = [t.namePattern && `name ${t.namePattern}`, Object.keys(t.labels).length && formatLabels(t.labels)].filter(Boolean).join(' ') || '-';
      return [t.id, t.kind, t.role || '-', state, until(t.expiresAt, now), t.kind === 'enroll' ? `${t.used}/${t.uses || '∞'}` : '-', limits, t.description || '-'];
    }),
  );
}

export function credentialsTable(creds: AgentCredential[], now = Date.now()): string {
  if (!creds.length) return 'no agent credentials\n';
  return renderTable(
    ['AGENT', 'STATE', 'SERIAL', 'EXPIRES', 'TOKEN', 'LABELS'],
    creds.map((c) => [c.name, c.state, c.serial ? c.serial.slice(0, 16) : '-', c.state === 'pending' ? '-' : until(c.expiresAt, now), c.tokenId || '-', formatLabels(c.labels) || '-']),
  );
}
