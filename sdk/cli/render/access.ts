/** Tables of tokens and agent credentials. */
import type { AgentCredential, TokenInfo } from '../../access.js';
import { formatAgo, formatLabels } from '../format.js';
import { paint } from '../colour.js';
import { plainView, type View } from '../output.js';
import { renderTable } from '../table.js';

function until(d: Date | undefined, now: number): string {
  if (!d) return 'never';
  const ms = d.getTime() - now;
  return ms <= 0 ? `expired ${formatAgo(d.getTime(), now)}` : `in ${formatAgo(now - ms, now).replace(/ ago$/, '')}`;
}

/** The `drover token list` table; wide adds when each token was created. */
export function tokensTable(tokens: TokenInfo[], view: View = plainView()): string {
  const now = view.now;
  if (!tokens.length) return 'no tokens\n';
  return renderTable(
    ['ID', 'NAME', 'KIND', 'ROLE', 'STATE', 'EXPIRES', 'USES', 'LIMITS', 'DESCRIPTION', ...(view.wide ? ['CREATED'] : [])],
    tokens.map((t) => {
      const state = t.revokedAt ? 'revoked' : t.expiresAt && t.expiresAt.getTime() <= now ? 'expired' : t.kind === 'enroll' && t.uses && t.used >= t.uses ? 'used up' : 'valid';
      const limits = [t.namePattern && `name ${t.namePattern}`, Object.keys(t.labels).length && formatLabels(t.labels)].filter(Boolean).join(' ') || '-';
      const row = [t.id, t.name || '-', t.kind, t.role || '-', state, until(t.expiresAt, now), t.kind === 'enroll' ? `${t.used}/${t.uses || '∞'}` : '-', limits, t.description || '-'];
      return view.wide ? [...row, formatAgo(t.createdAt.getTime(), now)] : row;
    }),
  );
}

/** The `drover agent list-credentials` table; wide adds the whole serial and when each was requested and issued. */
export function credentialsTable(creds: AgentCredential[], view: View = plainView()): string {
  const now = view.now;
  if (!creds.length) return 'no agent credentials\n';
  return renderTable(
    ['AGENT', 'STATE', 'SERIAL', 'EXPIRES', 'TOKEN', 'LABELS', ...(view.wide ? ['REQUESTED', 'ISSUED'] : [])],
    creds.map((c) => [
      c.name,
      paint(c.state === 'active' ? 'green' : c.state === 'pending' ? 'yellow' : 'red', c.state, view.colour),
      c.serial ? (view.wide ? c.serial : c.serial.slice(0, 16)) : '-',
      c.state === 'pending' ? '-' : until(c.expiresAt, now),
      c.tokenId || '-',
      formatLabels(c.labels) || '-',
      ...(view.wide ? [formatAgo(c.requestedAt.getTime(), now), c.issuedAt ? formatAgo(c.issuedAt.getTime(), now) : '-'] : []),
    ]),
  );
}
