/**
 * Sealing of secret values at rest: AES-256-GCM with a random 96-bit IV per
 * value and the value's context (its name, or the run it belongs to) as
 * additional data, so a sealed value moved to another name does not open.
 *
 * The key is `DROVER_SECRET_KEY` (32 bytes as 64 hex digits or base64) when
 * set, else `<data-dir>/secret.key` (made on first start, 0600). Losing the
 * key loses the secrets; docs/security.md says how to back it up and rotate.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSecretFile } from '../../common/secret-file.js';

const VERSION = 'v1';

export class SecretKeyError extends Error {
  override name = 'SecretKeyError';
  readonly code = 'SECRET_KEY_INVALID';
}

function parseKey(text: string, from: string): Buffer {
  const t = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
  if (key.length !== 32) {
    throw new SecretKeyError(`${from} is not a 32-byte key (64 hex digits or base64 of 32 bytes); make one with \`openssl rand -hex 32\``);
  }
  return key;
}

export class SecretBox {
  private constructor(private readonly key: Buffer) {}

  /** The key from DROVER_SECRET_KEY, else from (or made in) `<dataDir>/secret.key`. */
  static load(dataDir: string, env: NodeJS.ProcessEnv = process.env): { box: SecretBox; source: string } {
    if (env.DROVER_SECRET_KEY) return { box: new SecretBox(parseKey(env.DROVER_SECRET_KEY, 'DROVER_SECRET_KEY')), source: 'DROVER_SECRET_KEY' };
    const file = join(dataDir, 'secret.key');
    if (!existsSync(file)) writeSecretFile(file, `${randomBytes(32).toString('hex')}\n`);
    return { box: new SecretBox(parseKey(readFileSync(file, 'utf8'), file)), source: file };
  }

  /** For tests. */
  static fromKey(key: Buffer): SecretBox {
    return new SecretBox(key);
  }

  seal(value: string, context: string): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(context));
    const ct = Buffer.concat([c.update(value, 'utf8'), c.final()]);
    return [VERSION, iv.toString('base64url'), c.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
  }

  /** Throws SecretKeyError when the value was sealed with another key or for another context. */
  open(sealed: string, context: string): string {
    const [v, iv, tag, ct] = sealed.split('.');
    if (v !== VERSION || !iv || !tag || ct === undefined) throw new SecretKeyError(`sealed value of ${context} is not in the ${VERSION} format`);
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
      d.setAAD(Buffer.from(context));
      d.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([d.update(Buffer.from(ct, 'base64url')), d.final()]).toString('utf8');
    } catch {
      throw new SecretKeyError(`cannot open the sealed value of ${context}: it was sealed with another secret key (check DROVER_SECRET_KEY / secret.key) or altered`);
    }
  }
}
