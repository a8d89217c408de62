/**
 * One writer per directory: `<dir>/LOCK` names the process that holds it
 * (pid, its start time from /proc, host). Taking it is atomic (a hard link of
 * a complete temp file, which fails if LOCK exists). A lock whose holder is
 * gone (no such pid, or a pid reused by a process that started later) is
 * stale and taken over: renamed away first, so of two processes taking over
 * at once only one succeeds. The lock is removed at a normal exit; after a
 * SIGKILL it is stale.
 */
import { linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

interface Holder {
  pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks after boot); '' where /proc is not there. */
  startTime: string;
  host: string;
  /** What holds it ("drover server", "drover agent"), for the message. */
  what: string;
  sinceMs: number;
}

export class DirLockedError extends Error {
  override name = 'DirLockedError';
  readonly code = 'DIR_LOCKED';
}

/** A process's start time, which tells a live holder from a reused pid. */
export function processStartTime(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}

function alive(h: Holder): boolean {
  if (h.host !== hostname()) return true; // another machine's process (a shared file system): never taken over
  try {
    process.kill(h.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  const now = processStartTime(h.pid);
  return !h.startTime || !now || now === h.startTime;
}

/**
 * Takes `<dir>/LOCK` for this process; throws DirLockedError naming the holder
 * when a live process has it. Returns the release function (also run at exit).
 */
export function lockDir(dir: string, what: string): () => void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const lock = join(dir, 'LOCK');
  const me: Holder = { pid: process.pid, startTime: processStartTime(process.pid), host: hostname(), what, sinceMs: Date.now() };
  const tmp = join(dir, `.LOCK.${process.pid}`);
  writeFileSync(tmp, `${JSON.stringify(me)}\n`, { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(tmp, lock);
        const release = () => {
          try {
            const h = JSON.parse(readFileSync(lock, 'utf8')) as Holder;
            if (h.pid === process.pid) rmSync(lock, { force: true });
          } catch {
            // gone already
          }
        };
        process.once('exit', release);
        return release;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      let holder: Holder | undefined;
      try {
        holder = JSON.parse(readFileSync(lock, 'utf8')) as Holder;
      } catch {
        holder = undefined; // unreadable (torn by a crash mid-write cannot happen: it is linked whole); treat as stale
      }
      if (holder && alive(holder)) {
        throw new DirLockedError(
          `${dir} is in use by ${holder.what || 'another process'} (pid ${holder.pid}${holder.host !== me.host ? ` on ${holder.host}` : ''}, since ${new Date(holder.sinceMs).toISOString()}); ` +
            `one process per directory: stop it first, or give this one a directory of its own`,
        );
      }
      // Stale: move it away (only one of several takers can), then try again.
      try {
        renameSync(lock, join(dir, `.LOCK.stale.${process.pid}`));
        rmSync(join(dir, `.LOCK.stale.${process.pid}`), { force: true });
      } catch {
        // another process took it over first: look again
      }
    }
    throw new DirLockedError(`${dir}: could not take its lock (another process keeps taking it); try again`);
  } finally {
    rmSync(tmp, { force: true });
  }
}
