/**
 * How both ends reach NATS: the `--nats*` options of `drover server` and
 * `drover agent` (same names, environment variables, checks and help) and
 * the nats.js connection options they turn into. Only each part's main.ts
 * connects; this file reads files and validates, it opens no socket.
 */
import { readFileSync } from 'node:fs';
import { credsAuthenticator, nkeyAuthenticator, type Authenticator } from '@nats-io/nats-core';
import type { NodeConnectionOptions } from '@nats-io/transport-node';
import { ConfigError } from './errors.js';

/** The option keys as commander and the YAML config file spell them (camelCase of the flags). */
export const NATS_OPTION_FLAGS = {
  nats: '--nats',
  natsUser: '--nats-user',
  natsPass: '--nats-pass',
  natsToken: '--nats-token',
  natsCreds: '--nats-creds',
  natsNkeySeed: '--nats-nkey-seed',
  natsTlsCa: '--nats-tls-ca',
  natsTlsCert: '--nats-tls-cert',
  natsTlsKey: '--nats-tls-key',
} as const;

export type NatsOptionKey = keyof typeof NATS_OPTION_FLAGS;
export type NatsOptionInput = Partial<Record<NatsOptionKey, unknown>>;

/** Environment variables, between the config file and the flags in precedence. */
export const NATS_ENV: Record<string, NatsOptionKey> = {
  DROVER_NATS: 'nats',
  DROVER_NATS_USER: 'natsUser',
  DROVER_NATS_PASS: 'natsPass',
  DROVER_NATS_TOKEN: 'natsToken',
  DROVER_NATS_CREDS: 'natsCreds',
  DROVER_NATS_NKEY_SEED: 'natsNkeySeed',
  DROVER_NATS_TLS_CA: 'natsTlsCa',
  DROVER_NATS_TLS_CERT: 'natsTlsCert',
  DROVER_NATS_TLS_KEY: 'natsTlsKey',
};

/**
 * `--help` of the options after `--nats`, the same for `drover server` and
 * `drover agent` (each says what `--nats` itself does there): the flag with
 * its value's name, then the text.
 */
export const NATS_OPTION_HELP: readonly (readonly [flags: string, text: string])[] = [
  ['--nats-user <user>', 'NATS user, with --nats-pass (env DROVER_NATS_USER)'],
  ['--nats-pass <password>', 'NATS password (env DROVER_NATS_PASS)'],
  ['--nats-token <token>', 'NATS authentication token (env DROVER_NATS_TOKEN)'],
  ['--nats-creds <file>', 'NATS credentials file: user JWT and nkey seed (env DROVER_NATS_CREDS)'],
  ['--nats-nkey-seed <file>', 'file holding a NATS nkey user seed (env DROVER_NATS_NKEY_SEED)'],
  ['--nats-tls-ca <file>', 'PEM CA that signed the NATS server certificate (env DROVER_NATS_TLS_CA)'],
  ['--nats-tls-cert <file>', 'PEM client certificate for NATS, with --nats-tls-key (env DROVER_NATS_TLS_CERT)'],
  ['--nats-tls-key <file>', 'PEM private key of --nats-tls-cert (env DROVER_NATS_TLS_KEY)'],
];

/** A validated NATS link configuration; empty strings mean "not set". */
export interface NatsOptions {
  /** nats:// or tls:// URLs; several for a cluster. */
  servers: string[];
  user: string;
  pass: string;
  token: string;
  /** A .creds file (user JWT and nkey seed), as `nsc` writes it. */
  credsFile: string;
  /** A file holding an nkey user seed (SU...). */
  nkeySeedFile: string;
  /** PEM CA bundle that signed the server's certificate. */
  tlsCa: string;
  /** PEM client certificate and key, when the server verifies clients. */
  tlsCert: string;
  tlsKey: string;
}

/**
 * Merges file < environment < flags and validates. Returns undefined when no
 * NATS URL is set (and then no other --nats-* option may be).
 */
export function resolveNatsOptions(file: NatsOptionInput, flags: NatsOptionInput, env: NodeJS.ProcessEnv): NatsOptions | undefined {
  const fromEnv: NatsOptionInput = {};
  for (const [k, key] of Object.entries(NATS_ENV)) if (env[k]) fromEnv[key] = env[k];
  const pick = (k: NatsOptionKey): string => {
    const v = flags[k] ?? fromEnv[k] ?? file[k];
    return v === undefined || v === null ? '' : String(v);
  };
  const raw = Object.fromEntries(Object.keys(NATS_OPTION_FLAGS).map((k) => [k, pick(k as NatsOptionKey)])) as Record<NatsOptionKey, string>;

  if (!raw.nats) {
    const stray = (Object.keys(NATS_OPTION_FLAGS) as NatsOptionKey[]).filter((k) => k !== 'nats' && raw[k]);
    if (stray.length) {
      throw new ConfigError(`${stray.map((k) => NATS_OPTION_FLAGS[k]).join(', ')} ${stray.length > 1 ? 'need' : 'needs'} --nats nats://HOST:PORT (or DROVER_NATS)`);
    }
    return undefined;
  }

  const servers = raw.nats.split(',').map((s) => s.trim()).filter(Boolean);
  if (!servers.length) throw new ConfigError(`--nats "${raw.nats}" names no server: use nats://HOST:PORT`);
  for (const s of servers) {
    let url: URL | undefined;
    try {
      url = new URL(s);
    } catch {
      // reported below
    }
    if (!url || !['nats:', 'tls:'].includes(url.protocol) || !url.hostname || url.pathname.replace(/^\/$/, '') || url.search) {
      throw new ConfigError(`--nats "${s}" is not a NATS server URL: use nats://HOST:PORT (tls://HOST:PORT for TLS); separate several with commas`);
    }
    if (url.username || url.password) {
      throw new ConfigError(`--nats "${url.protocol}//${url.host}": put credentials in --nats-user/--nats-pass or --nats-token, not in the URL (it ends up in logs)`);
    }
  }

  const methods = [
    raw.natsUser || raw.natsPass ? '--nats-user/--nats-pass' : '',
    raw.natsToken ? '--nats-token' : '',
    raw.natsCreds ? '--nats-creds' : '',
    raw.natsNkeySeed ? '--nats-nkey-seed' : '',
  ].filter(Boolean);
  if (methods.length > 1) throw new ConfigError(`choose one NATS authentication, not ${methods.join(' and ')}`);
  if (Boolean(raw.natsUser) !== Boolean(raw.natsPass)) {
    throw new ConfigError(raw.natsUser ? '--nats-user needs --nats-pass (or DROVER_NATS_PASS)' : '--nats-pass needs --nats-user (or DROVER_NATS_USER)');
  }
  if (Boolean(raw.natsTlsCert) !== Boolean(raw.natsTlsKey)) {
    throw new ConfigError(raw.natsTlsCert ? '--nats-tls-cert needs --nats-tls-key (the client certificate\'s private key)' : '--nats-tls-key needs --nats-tls-cert');
  }
  for (const k of ['natsCreds', 'natsNkeySeed', 'natsTlsCa', 'natsTlsCert', 'natsTlsKey'] as const) {
    if (!raw[k]) continue;
    try {
      readFileSync(raw[k]);
    } catch (err) {
      throw new ConfigError(`${NATS_OPTION_FLAGS[k]} ${raw[k]}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); give the path of a readable file`);
    }
  }
  return {
    servers,
    user: raw.natsUser,
    pass: raw.natsPass,
    token: raw.natsToken,
    credsFile: raw.natsCreds,
    nkeySeedFile: raw.natsNkeySeed,
    tlsCa: raw.natsTlsCa,
    tlsCert: raw.natsTlsCert,
    tlsKey: raw.natsTlsKey,
  };
}

/**
 * nats.js options for `connect()`: reconnect forever (the drover session
 * rules above the connection cope with the gaps), auth and TLS from `o`.
 * Reads the creds/seed files now, so a bad file fails at start.
 */
export function natsConnectionOptions(o: NatsOptions, name: string): NodeConnectionOptions {
  let authenticator: Authenticator | undefined;
  if (o.credsFile) authenticator = credsAuthenticator(readFileSync(o.credsFile));
  if (o.nkeySeedFile) authenticator = nkeyAuthenticator(new TextEncoder().encode(readFileSync(o.nkeySeedFile, 'utf8').trim()));
  const wantsTls = o.servers.some((s) => s.startsWith('tls://')) || Boolean(o.tlsCa || o.tlsCert);
  return {
    servers: o.servers,
    name,
    ...(o.user ? { user: o.user, pass: o.pass } : {}),
    ...(o.token ? { token: o.token } : {}),
    ...(authenticator ? { authenticator } : {}),
    ...(wantsTls
      ? { tls: { ...(o.tlsCa ? { caFile: o.tlsCa } : {}), ...(o.tlsCert ? { certFile: o.tlsCert, keyFile: o.tlsKey } : {}) } }
      : {}),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
    // A dead TCP connection is noticed within about pingInterval * (maxPingOut + 1).
    pingInterval: 10_000,
    maxPingOut: 2,
  };
}

/** What to check when the first connection to NATS fails, by the error nats.js gave. */
export function natsConnectHint(err: Error): string {
  if (err.name === 'AuthorizationError' || /nkey|creds|jwt|authentication|authorization/i.test(err.message)) {
    return 'check --nats-user/--nats-pass, --nats-token, --nats-creds or --nats-nkey-seed';
  }
  if (/tls|certificate|ssl/i.test(err.message)) return 'check --nats-tls-ca, --nats-tls-cert and --nats-tls-key';
  return 'is nats-server running there? Check --nats (or DROVER_NATS)';
}
