import { pathToFileURL } from 'node:url';
import { entryPath, type Entry } from './entries.js';

/**
 * Runs an entry in this process: `drover server` and `drover agent` are the
 * control plane and the agent themselves, so the pid a user or a supervisor
 * started is the service (a SIGKILL of it leaves nothing behind). The entry
 * is loaded by path, never imported by name: the CLI shares no code with
 * those parts. It reads its flags from process.argv and exits the process
 * itself (on a signal, or an error); this resolves once it has started.
 */
export async function runEntry(entry: Entry, args: readonly string[]): Promise<void> {
  const path = entryPath(entry);
  process.argv = [process.argv[0], path, ...args];
  await import(pathToFileURL(path).href);
}
