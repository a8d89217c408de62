/**
 * OpenSSH known_hosts checking, for the installer (sdk/install) and for ssh
 * steps (agent/executor/ssh): the subset of sshd(8)'s "SSH_KNOWN_HOSTS FILE
 * FORMAT" that ssh(1) writes and reads: plain and hashed (`|1|salt|hash`)
 * host names, `[host]:port` for ports other than 22, comma-separated
 * patterns with `*`, `?` and `!`, and the `@revoked` marker (`@cert-authority`
 * lines are skipped: neither side does host certificates). ssh2 hands over
 * the raw key; this says whether it is known, unknown or changed, which key
 * types to offer the host first, and writes the line an accepted new key adds.
 */
import { createHash, createHmac } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ServerHostKeyAlgorithm } from 'ssh2';

/** One key line that applies to a host. */
export interface KnownKey {
  keyType: string;
  /** The key blob, base64 as in the file. */
  key: string;
  revoked: boolean;
}

/** The outcome of checking a host's key. */
export type HostKeyCheck =
  | { status: 'known' }
  | { status: 'unknown' }
  | { status: 'changed'; knownTypes: string[] }
  | { status: 'revoked' };

/** The name a host has in known_hosts: `host`, or `[host]:port` off port 22. */
export function hostEntryName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return re.test(name);
}

function hostsFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return false;
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
  }
  let matched = false;
  for (const pattern of field.split(',')) {
    if (pattern.startsWith('!')) {
      if (globMatch(pattern.slice(1), name)) return false;
    } else if (globMatch(pattern, name)) {
      matched = true;
    }
  }
  return matched;
}

/** The keys `text` (a known_hosts file) lists for host:port. */
export function keysFor(text: string, host: string, port: number): KnownKey[] {
  const name = hostEntryName(host, port);
  const out: KnownKey[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let revoked = false;
    if (fields[0].startsWith('@')) {
      const marker = fields.shift();
      if (marker === '@revoked') revoked = true;
      else continue;
    }
    const [hosts, keyType, key] = fields;
    if (!hosts || !keyType || !key) continue;
    if (hostsFieldMatches(hosts, name)) out.push({ keyType, key, revoked });
  }
  return out;
}

/** The key type inside an SSH public key blob (its first SSH string). */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return '';
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('latin1');
}

/** `SHA256:...`, as ssh-keygen -l prints a key's fingerprint. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** ssh2 host key algorithm names for a known_hosts key type. */
const HOST_KEY_ALGORITHMS: Record<string, ServerHostKeyAlgorithm[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};

/** ssh2's host key algorithms, in its default order of preference. */
const ALL_HOST_KEY_ALGORITHMS = Object.values(HOST_KEY_ALGORITHMS).flat();

/**
 * The host key algorithms to offer (ssh2's `algorithms.serverHostKey`): the
 * types known for the host first, so a host with only an RSA entry is not
 * "changed" by its ed25519 key; [] when none is known (ssh2's own order).
 */
export function hostKeyAlgorithms(known: KnownKey[]): ServerHostKeyAlgorithm[] {
  const preferred = [...new Set(known.filter((k) => !k.revoked).flatMap((k) => HOST_KEY_ALGORITHMS[k.keyType] ?? []))];
  return preferred.length ? [...preferred, ...ALL_HOST_KEY_ALGORITHMS.filter((a) => !preferred.includes(a))] : [];
}

/** Checks the key a host presented against the keys known for it. */
export function checkHostKey(known: KnownKey[], blob: Buffer): HostKeyCheck {
  const b64 = blob.toString('base64');
  if (known.some((k) => k.revoked && k.key === b64)) return { status: 'revoked' };
  const live = known.filter((k) => !k.revoked);
  if (live.some((k) => k.key === b64)) return { status: 'known' };
  if (live.length === 0) return { status: 'unknown' };
  return { status: 'changed', knownTypes: [...new Set(live.map((k) => k.keyType))] };
}

/** The known_hosts file's text, '' when it does not exist. */
export function readKnownHosts(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

/** Appends a host's key to a known_hosts file (creating it, mode 0600), as ssh's accept-new does. */
export function addKnownHost(file: string, host: string, port: number, blob: Buffer): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const text = readKnownHosts(file);
  const sep = text === '' || text.endsWith('\n') ? '' : '\n';
  appendFileSync(file, `${sep}${hostEntryName(host, port)} ${keyTypeOf(blob)} ${blob.toString('base64')}\n`, { mode: 0o600 });
}
