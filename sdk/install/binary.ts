/**
 * Finds the agent binary to upload for a host's architecture and computes its
 * size and SHA-256 (once per file, however many hosts get it).
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, openSync, readSync, closeSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InstallError } from '../errors.js';
import type { AgentArch } from './facts.js';
import type { BinaryInfo } from './plan.js';

/** ELF e_machine values of the architectures agents are built for. */
const ELF_MACHINE: Record<number, AgentArch> = { 0x3e: 'x64', 0xb7: 'arm64' };

/** The file name `npm run build:agent` gives the binary for an architecture. */
export function binaryName(arch: AgentArch): string {
  return `drover-agent-linux-${arch}`;
}

/** Where `npm run build:agent` leaves binaries: dist/ of this package, from dist/sdk/install/ or from the sources in sdk/install/. */
function defaultDirs(): string[] {
  return [fileURLToPath(new URL('../../', import.meta.url)), fileURLToPath(new URL('../../dist/', import.meta.url))];
}

/** The architecture an ELF file is built for, or undefined when it is not an ELF file of a known one. */
export function elfArch(path: string): AgentArch | undefined {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(20);
    if (readSync(fd, head, 0, 20, 0) < 20 || head.readUInt32BE(0) !== 0x7f454c46) return undefined;
    return ELF_MACHINE[head.readUInt16LE(18)];
  } finally {
    closeSync(fd);
  }
}

/**
 * The binary for `arch`: `binary` itself when it is a file, the matching
 * `drover-agent-linux-<arch>` inside it when it is a directory, else the one
 * in this package's dist/. Rejects with NO_BINARY when there is none or it
 * is built for another architecture.
 */
export function findBinary(binary: string | undefined, arch: AgentArch, host: string): string {
  const candidates = binary
    ? [existsSync(binary) && statSync(binary).isDirectory() ? join(binary, binaryName(arch)) : binary]
    : defaultDirs().map((d) => join(d, binaryName(arch)));
  const path = candidates.find((p) => existsSync(p));
  if (!path) {
    throw new InstallError(`${host}: no agent binary for ${arch} (looked for ${candidates.join(', ')}); nothing was changed`, {
      reason: 'NO_BINARY',
      hint:
        arch === process.arch
          ? 'build it with `npm run build:agent`, or pass --binary PATH'
          : `build it on a Linux ${arch} machine with \`npm run build:agent\` and pass --binary PATH (a binary can only be built on its own architecture)`,
    });
  }
  const built = elfArch(path);
  if (built !== arch) {
    throw new InstallError(`${host}: ${path} is ${built ? `built for ${built}` : 'not a Linux agent binary'}, but the host is ${arch}; nothing was changed`, {
      reason: 'NO_BINARY',
      hint: `pass --binary with a drover-agent-linux-${arch} built by \`npm run build:agent\` on a ${arch} machine`,
    });
  }
  return path;
}

const infoCache = new Map<string, Promise<BinaryInfo>>();

/** Size and SHA-256 of a binary, computed once per path and modification time. */
export function binaryInfo(path: string): Promise<BinaryInfo> {
  const st = statSync(path);
  const key = `${path}:${st.mtimeMs}:${st.size}`;
  let info = infoCache.get(key);
  if (!info) {
    info = new Promise<BinaryInfo>((resolve, reject) => {
      const hash = createHash('sha256');
      createReadStream(path)
        .on('data', (chunk) => hash.update(chunk))
        .on('error', reject)
        .on('end', () => resolve({ path, bytes: st.size, sha256: hash.digest('hex') }));
    });
    infoCache.set(key, info);
  }
  return info;
}
