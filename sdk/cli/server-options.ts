/**
 * The flags that say which control plane to talk to and how, on the program
 * and on every command that dials. Apart from context.ts (which re-exports
 * them) so that building the program loads no config-file parser.
 */
import { Option } from 'commander';
import { DEFAULT_ADDRESS } from '../defaults.js';

/** `--server ADDR`, accepted both before the command and after it. */
export function serverOption(): Option {
  return new Option('--server <addr>', `control plane address (default: $DROVER_ADDR or ${DEFAULT_ADDRESS})`);
}

/** `--token TOKEN`. */
export function tokenOption(): Option {
  return new Option('--token <token>', 'API token (default: $DROVER_TOKEN, the config file, or ./.drover/dev/server/admin.token)');
}

/** `--ca FILE`. */
export function caOption(): Option {
  return new Option('--ca <file>', "CA certificate the control plane's certificate is checked against (default: $DROVER_CA, the config file, or ./.drover/dev/server/ca.pem)");
}
