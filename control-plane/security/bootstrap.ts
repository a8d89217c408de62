/** The first admin token: made on the first start, written to <data-dir>/admin.token (0600), never overwritten. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeSecretFile } from '../../common/secret-file.js';
import type { Store } from '../store/store.js';
import type { Tokens } from './tokens.js';

/** Makes the first admin token when the data dir has none; returns the file's path. */
export async function bootstrapAdminToken(dataDir: string, tokens: Tokens, store: Store): Promise<string> {
  const file = join(dataDir, 'admin.token');
  if (existsSync(file)) return file;
  // The file was removed on purpose (rotated away) if admin tokens exist already: do not mint another.
  if (tokens.list().some((t) => t.kind === 'api' && t.role === 'admin' && !t.revokedMs)) return file;
  const { token } = tokens.create({ kind: 'api', role: 'admin', description: 'first admin token (admin.token)' });
  // Stored before the file exists: a crash in between leaves no file that names an unknown token.
  await store.flush();
  writeSecretFile(file, `${token}\n`);
  return file;
}
