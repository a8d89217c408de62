/**
 * Credential references of ssh steps, resolved on the proxy agent. A plan only
 * names a credential; the agent maps the name to a file it holds:
 *
 *   1. `--credential NAME=FILE` (repeatable; `credentials:` in the config file)
 *   2. else `<credentials dir>/NAME` (default `<state-dir>/credentials/NAME`)
 *
 * A file that holds a private key (PEM or OpenSSH format) is a key; its
 * passphrase, if it is encrypted, is read from `FILE.passphrase`. Any other
 * file holds a password (its one line; a trailing newline is ignored). Files
 * are read when a step needs them, so rotating one needs no restart.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** A resolved credential. `secrets` are the strings masked in logs and outputs. */
export interface Credential {
  name: string;
  /** The file it came from (not secret), for messages. */
  file: string;
  kind: 'key' | 'password';
  privateKey?: string;
  passphrase?: string;
  password?: string;
  secrets: string[];
}

export interface CredentialSources {
  /** NAME -> file, from --credential flags and the config file. */
  files: Record<string, string>;
  /** Where NAME is looked up as a file when no flag names it. */
  dir: string;
}

/** Why a credential could not be used; the message says what to do. */
export class CredentialError extends Error {
  override name = 'CredentialError';
  readonly code = 'CREDENTIAL_UNAVAILABLE';
}

const REF = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const KEY_HEADER = /^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|^PuTTY-User-Key-File-/;

/** Parses `NAME=FILE` flag values (repeatable --credential). */
export function parseCredentialFlags(items: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    const name = item.slice(0, eq);
    const file = item.slice(eq + 1);
    if (eq < 1 || !REF.test(name) || !file) {
      throw new CredentialError(`--credential "${item}" is not NAME=FILE (a name of letters, digits, ".", "-", "_", then the path of a key or password file)`);
    }
    out[name] = file;
  }
  return out;
}

export function resolveCredential(name: string, sources: CredentialSources, agentName: string): Credential {
  if (!REF.test(name)) throw new CredentialError(`credential reference "${name}" is not a name`);
  const file = sources.files[name] ?? join(sources.dir, name);
  let text: string;
  try {
    if (!statSync(file).isFile()) throw new Error('not a regular file');
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new CredentialError(
      missing && !sources.files[name]
        ? `credential "${name}" is not known on agent ${agentName}: start it with --credential ${name}=/path/to/key-or-password-file, or put the file at ${file}`
        : `cannot read credential "${name}" from ${file} on agent ${agentName}: ${(err as Error).message}`,
    );
  }
  return fromText(name, file, text, () => {
    try {
      return readFileSync(`${file}.passphrase`, 'utf8').replace(/\r?\n$/, '');
    } catch {
      return undefined; // not encrypted, or the passphrase is missing: ssh2 says which when it parses the key
    }
  }, `fix the file on agent ${agentName}`);
}

/**
 * A credential the control plane sent with the step: the stored secret of
 * that name (`drover secret set NAME`), and `NAME.passphrase` for an
 * encrypted key. It wins over the agent's own files.
 */
export function suppliedCredential(name: string, text: string, passphrase?: string): Credential {
  return fromText(name, `secret ${name}`, text, () => passphrase, `fix it with \`drover secret set ${name}\``);
}

function fromText(name: string, file: string, text: string, passphraseOf: () => string | undefined, fix: string): Credential {
  if (KEY_HEADER.test(text.trimStart())) {
    const passphrase = passphraseOf();
    return { name, file, kind: 'key', privateKey: text, passphrase, secrets: passphrase ? [passphrase] : [] };
  }
  const password = text.replace(/\r?\n$/, '');
  if (password === '' || /[\r\n]/.test(password)) {
    throw new CredentialError(`credential "${name}" (${file}) is neither a private key nor a password file (one line): ${fix}`);
  }
  return { name, file, kind: 'password', password, secrets: [password] };
}

/** Secrets shorter than this are not masked: masking every "a" would garble the log and hide nothing. */
export const MIN_MASKED_LENGTH = 3;

/** Replaces every occurrence of a secret with ***. */
export function mask(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length >= MIN_MASKED_LENGTH) out = out.split(s).join('***');
  return out;
}
