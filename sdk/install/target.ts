/** `user@host[:port]` as `drover agent install` takes it. */
import { userInfo } from 'node:os';
import { InvalidInputError } from '../errors.js';

/** Where to log in. */
export interface SshTarget {
  user: string;
  host: string;
  port: number;
}

/** The default SSH port. */
export const SSH_PORT = 22;

/**
 * Parses `user@host`, `user@host:port`, `user@[v6addr]:port` or `host`
 * (the user then defaults to `defaultUser`, else the local user name).
 */
export function parseTarget(text: string, defaultUser?: string): SshTarget {
  const m = /^(?:([^@\s]+)@)?(\[[0-9A-Fa-f:.]+\]|[^@\s:[\]]+)(?::(\d{1,5}))?$/.exec(text.trim());
  const port = m?.[3] === undefined ? SSH_PORT : Number(m[3]);
  if (!m || port < 1 || port > 65535) {
    throw new InvalidInputError(`"${text}" is not user@host[:port]`, { hint: 'for example root@10.0.0.5 or deploy@web-1.example:2222' });
  }
  const host = m[2].startsWith('[') ? m[2].slice(1, -1) : m[2];
  return { user: m[1] ?? defaultUser ?? userInfo().username, host, port };
}

/** `user@host:port`, the way hosts are named in progress lines and the result table. */
export function formatTarget(t: SshTarget): string {
  const host = t.host.includes(':') ? `[${t.host}]` : t.host;
  return `${t.user}@${host}:${t.port}`;
}
