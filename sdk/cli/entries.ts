/**
 * Where the control-plane and agent programs live, relative to this file in
 * the built tree (dist/sdk/cli/ -> dist/control-plane/, dist/agent/). They
 * are paths to load (`drover server`, `drover agent` run them in their own
 * process) or spawn (`drover dev`), never modules imported by name: the CLI
 * shares no code with them and talks to them only over the wire.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FileNotFoundError } from '../errors.js';

/** The programs `drover` can start. */
export type Entry = 'server' | 'agent';

const ENTRY_URLS: Record<Entry, URL> = {
  server: new URL('../../control-plane/main.js', import.meta.url),
  agent: new URL('../../agent/main.js', import.meta.url),
};

/** Absolute path of an entry; throws FileNotFoundError if it is not built. */
export function entryPath(entry: Entry): string {
  const path = fileURLToPath(ENTRY_URLS[entry]);
  if (!existsSync(path)) {
    throw new FileNotFoundError(`the ${entry === 'server' ? 'control plane' : 'agent'} program is missing: ${path}`, {
      hint: 'run `npm run build` first (the CLI must run from dist/, e.g. `node dist/sdk/cli/main.js`)',
    });
  }
  return path;
}
