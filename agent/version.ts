/**
 * The agent's version and build commit. The single-binary build defines
 * DROVER_BUILD (esbuild `define`); a plain build reads package.json.
 */
import { readFileSync } from 'node:fs';

declare const DROVER_BUILD: { version: string; commit: string } | undefined;

function fromPackage(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    return pkg.version;
  } catch {
    return 'unknown';
  }
}

export const VERSION = typeof DROVER_BUILD !== 'undefined' ? `${DROVER_BUILD.version} (${DROVER_BUILD.commit})` : fromPackage();

/** How the agent is invoked: the single binary is `drover-agent`, the package's CLI runs it as `drover agent`. */
export const PROGRAM = typeof DROVER_BUILD !== 'undefined' ? 'drover-agent' : 'drover agent';
