/**
 * The CLI config file: `$DROVER_CONFIG`, else
 * `$XDG_CONFIG_HOME/drover/config.yaml` (`~/.config/drover/config.yaml`).
 * It supplies what a flag or the environment does not: flags > environment >
 * this file > defaults (context.ts applies the order). A file that is not
 * valid is refused with its path, the line and the key, never half-used
 * (config-file.ts parses it, and loads the YAML parser only when there is a
 * file: most machines have none, and a command starts faster without it).
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InvalidInputError } from '../errors.js';

/** What the file may hold, resolved (paths made absolute, `tokenFile` read). */
export interface CliConfig {
  /** Control plane address, HOST:PORT. (`server` is accepted as an older name for it.) */
  address?: string;
  /** API token, given inline or read from `tokenFile`. */
  token?: string;
  /** CA certificate file. */
  ca?: string;
  /** Default `-o` format of listings: table, wide, json or yaml. */
  output?: OutputFormat;
}

/** The `-o` formats of listings. */
export const OUTPUT_FORMATS = ['table', 'wide', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** The keys a config file may hold (`server` is an older name for `address`). */
export const CONFIG_KEYS = ['address', 'server', 'token', 'tokenFile', 'ca', 'output'] as const;

/** The config file's path for this environment. */
export function configFile(env: NodeJS.ProcessEnv = process.env): string {
  return env.DROVER_CONFIG || join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'drover', 'config.yaml');
}

const cache = new Map<string, CliConfig>();

/**
 * Reads the config file of `env`, once per process; {} when there is none
 * (an error when DROVER_CONFIG names a missing one). program.ts reads it
 * before every command's action, so that loadConfig can answer at once.
 */
export async function readConfig(env: NodeJS.ProcessEnv = process.env): Promise<CliConfig> {
  const file = configFile(env);
  let config = cache.get(file);
  if (!config) {
    if (!existsSync(file)) {
      if (env.DROVER_CONFIG) throw new InvalidInputError(`the config file ${file} (DROVER_CONFIG) does not exist`, { hint: 'create it (keys: address, token or tokenFile, ca, output) or unset DROVER_CONFIG' });
      config = {};
    } else {
      const { parseConfig } = await import('./config-file.js');
      config = parseConfig(readFileSync(file, 'utf8'), file);
    }
    cache.set(file, config);
  }
  return config;
}

/** The config file of `env` as readConfig read it. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): CliConfig {
  const config = cache.get(configFile(env));
  if (!config) throw new Error(`internal error: the config file ${configFile(env)} is used before readConfig() read it`);
  return config;
}
