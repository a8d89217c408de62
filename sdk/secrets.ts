import type { SecretInfoOut } from '../proto/index.js';
import type { Connection } from './connection.js';

/** A stored secret as listed: its name and history, never its value. */
export interface SecretInfo {
  name: string;
  createdAt: Date;
  updatedAt: Date;
  /** Token id of the last writer. */
  updatedBy: string;
  /** 1 for a new secret, one more with each set. */
  version: number;
}

const toInfo = (s: SecretInfoOut): SecretInfo => ({ name: s.name, createdAt: new Date(s.createdMs), updatedAt: new Date(s.updatedMs), updatedBy: s.updatedBy, version: s.version });

/** Named secrets, stored encrypted by the control plane; steps use them as `secrets: [NAME]` or `${{ secrets.NAME }}`. */
export class SecretsApi {
  /** @internal */
  constructor(private readonly conn: Connection) {}

  /** Creates or replaces a secret (admin). */
  async set(name: string, value: string): Promise<SecretInfo> {
    return toInfo(await this.conn.unary<SecretInfoOut>((cb) => this.conn.secrets.setSecret({ name, value }, cb)));
  }

  /** Names and dates of every secret (operator). */
  async list(): Promise<SecretInfo[]> {
    const res = await this.conn.unary<{ secrets: SecretInfoOut[] }>((cb) => this.conn.secrets.listSecrets({}, cb));
    return res.secrets.map(toInfo);
  }

  /** Removes a secret (admin). Rejects with SecretNotFoundError. */
  async remove(name: string): Promise<SecretInfo> {
    return toInfo(await this.conn.unary<SecretInfoOut>((cb) => this.conn.secrets.deleteSecret({ name }, cb)));
  }
}
