/**
 * The parts of a file step that can refuse or fail: its mode, its owner, and
 * the write itself (a temp file next to the target, chowned and chmodded,
 * then renamed over it; removed again on any failure).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, renameSync, rmSync, writeFileSync } from 'node:fs';

/** Mode of a file step that names none. */
export const DEFAULT_FILE_MODE = 0o644;

/** A file step's mode, owner or write that fails the step; the message says what to change. */
export class FileStepError extends Error {
  override name = 'FileStepError';
  constructor(
    message: string,
    readonly code: 'BAD_MODE' | 'SPECIAL_MODE' | 'BAD_OWNER' | 'WRITE_FAILED',
  ) {
    super(message);
  }
}

const SPECIAL_BITS: [number, string][] = [
  [0o4000, 'setuid'],
  [0o2000, 'setgid'],
  [0o1000, 'sticky'],
];

/** Four octal digits, as `chmod` prints them. */
export const octal = (mode: number) => mode.toString(8).padStart(4, '0');

/**
 * The mode a file step asks for: up to four octal digits (one more leading 0
 * is fine, as in "04755"); '' is {@link DEFAULT_FILE_MODE}. Setuid, setgid and
 * sticky bits are refused unless `allowSpecial`.
 */
export function parseFileMode(text: string, allowSpecial: boolean): number {
  if (!text) return DEFAULT_FILE_MODE;
  if (!/^0?[0-7]{1,4}$/.test(text)) throw new FileStepError(`mode "${text}" is not an octal file mode of at most 4 digits (for example "0644" or "0755")`, 'BAD_MODE');
  const mode = parseInt(text, 8);
  const special = SPECIAL_BITS.filter(([bit]) => mode & bit).map(([, name]) => name);
  if (special.length && !allowSpecial) {
    const bits = special.length === 1 ? `the ${special[0]} bit` : `the ${special.slice(0, -1).join(', ')} and ${special.at(-1)} bits`;
    throw new FileStepError(
      `mode ${octal(mode)} sets ${bits}; file steps may not write setuid, setgid or sticky files unless the agent allows it: use a mode below 1000 (for example ${octal(mode & 0o777)}), or start the agent with --file-allow-special-modes to allow it`,
      'SPECIAL_MODE',
    );
  }
  return mode;
}

function idOf(args: string[], what: string): number {
  let out: string;
  try {
    out = execFileSync(args[0], args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  } catch (err) {
    const e = err as { status?: number; stderr?: string; message: string };
    const why = e.stderr?.trim() || (e.status === 2 ? 'not found' : e.message);
    throw new FileStepError(`${what} (\`${args.join(' ')}\`: ${why}); name an existing user and group, or leave owner out`, 'BAD_OWNER');
  }
  const id = Number(args[0] === 'getent' ? out.split(':')[2] : out.trim());
  if (!Number.isInteger(id) || id < 0) throw new FileStepError(`${what} (\`${args.join(' ')}\` printed "${out.trim()}")`, 'BAD_OWNER');
  return id;
}

/** `user` or `user:group` as uid and gid; without a group, the user's primary group. */
export function resolveOwner(owner: string): { uid: number; gid: number } {
  const [user, group, ...rest] = owner.split(':');
  if (!user || rest.length || group === '') throw new FileStepError(`owner "${owner}" is not "user" or "user:group"`, 'BAD_OWNER');
  const uid = idOf(['id', '-u', user], `owner "${owner}": no user "${user}" on this host`);
  const gid = group ? idOf(['getent', 'group', group], `owner "${owner}": no group "${group}" on this host`) : idOf(['id', '-g', user], `owner "${owner}": no primary group of user "${user}"`);
  return { uid, gid };
}

/**
 * Writes `content` to `target` atomically with exactly `mode` (not reduced by
 * the umask) and, when given, `owner`. The temp file is created exclusively
 * (an existing file or symlink of that name is never followed) and removed
 * when anything after its creation fails.
 */
export function writeAtomically(target: string, content: string, mode: number, owner: { uid: number; gid: number } | undefined): void {
  const tmp = `${target}.drover-tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  // 0600 while it is written: nobody else reads a half-written file.
  writeFileSync(tmp, content, { mode: 0o600, flag: 'wx' });
  try {
    if (owner) {
      try {
        chownSync(tmp, owner.uid, owner.gid);
      } catch (err) {
        throw new FileStepError(`cannot give ${target} to uid ${owner.uid}, gid ${owner.gid}: ${(err as Error).message}; the agent must run as root to set another owner`, 'WRITE_FAILED');
      }
    }
    // After chown, which clears setuid and setgid.
    chmodSync(tmp, mode);
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
