/**
 * What `drover agent install` and `uninstall` share: the SSH options, turning
 * targets or an inventory into per-host options, and running hosts in
 * parallel with progress and the result table.
 */
import { Option, type Command } from 'commander';
import { InvalidInputError } from '../../../errors.js';
import {
  closeInstallClients,
  DEFAULT_PARALLEL,
  forEachHost,
  parseTarget,
  readInventory,
  resolveInstallOptions,
  type HostResult,
  type InstallEvents,
  type InstallOptions,
  type ResolvedInstallOptions,
} from '../../../install/index.js';
import { printJson } from '../../context.js';
import { positiveInt } from '../../options.js';
import { InstallProgress, planReport, resultReport, resultsJson } from '../../render/install.js';
import { EXIT } from '../../report.js';

/** Options both commands take. */
export interface HostsFlags {
  inventory?: string;
  identity?: string;
  knownHosts?: string;
  acceptNewHostKey?: boolean;
  prefix?: string;
  parallel: number;
  connectTimeout: number;
  dryRun?: boolean;
  output: 'table' | 'json';
}

/** Adds the SSH, inventory and output options. */
export function addHostOptions(cmd: Command): Command {
  return cmd
    .option('--inventory <file>', 'YAML list of hosts (host, user, port, identity, name, labels); see docs/install.md')
    .option('-i, --identity <key>', 'SSH private key (default: ssh-agent, else ~/.ssh/id_ed25519, id_ecdsa, id_rsa)')
    .option('--known-hosts <file>', 'known_hosts file to check host keys against', '~/.ssh/known_hosts')
    .option('--accept-new-host-key', 'trust and record the key of a host not in known_hosts yet (a changed key always fails)')
    .option('--prefix <dir>', 'install under this directory (bin, etc, state, lib, log, run) instead of the system layout')
    .option('--parallel <n>', 'hosts worked on at once', positiveInt, DEFAULT_PARALLEL)
    .option('--connect-timeout <seconds>', 'SSH handshake timeout', positiveInt, 10)
    .option('--dry-run', 'connect, run the read-only probes, and print every command without changing anything')
    .addOption(new Option('-o, --output <format>', 'result format').choices(['table', 'json']).default('table'));
}

/** Per-host options from positional targets or --inventory, with `extra` (install's flags) applied. */
export function hostOptions(targets: string[], flags: HostsFlags, extra: Omit<InstallOptions, 'target'> = {}): ResolvedInstallOptions[] {
  if (flags.inventory && targets.length > 0) {
    throw new InvalidInputError('give hosts either as arguments or with --inventory, not both');
  }
  if (!flags.inventory && targets.length === 0) {
    throw new InvalidInputError('no host given', { hint: 'name one as user@host[:port], or pass --inventory hosts.yaml' });
  }
  if (extra.name && (targets.length > 1 || flags.inventory)) {
    throw new InvalidInputError('--name applies to one host only', { hint: 'give each host its name in the inventory' });
  }
  const common = {
    ...extra,
    knownHosts: flags.knownHosts,
    acceptNewHostKey: flags.acceptNewHostKey ?? false,
    prefix: flags.prefix,
    dryRun: flags.dryRun ?? false,
    connectTimeoutMs: flags.connectTimeout * 1000,
  };
  if (flags.inventory) {
    return readInventory(flags.inventory, extra.labels ?? {}).map((h) =>
      resolveInstallOptions({ ...common, target: h.target, identity: h.identity ?? flags.identity, ...(h.name ? { name: h.name } : {}), labels: h.labels }),
    );
  }
  return targets.map((t) => resolveInstallOptions({ ...common, target: parseTarget(t), identity: flags.identity }));
}

/** Runs every host with bounded parallelism, prints progress and the report; sets the exit code. */
export async function runHosts(hosts: ResolvedInstallOptions[], flags: HostsFlags, fn: (opts: ResolvedInstallOptions, events: InstallEvents) => Promise<HostResult>): Promise<void> {
  const progress = flags.output === 'table' ? new InstallProgress(process.stderr, hosts.length) : undefined;
  let results: HostResult[];
  try {
    results = await forEachHost(hosts, flags.parallel, async (opts) => {
      const result = await fn(opts, progress ?? {});
      progress?.done(result);
      return result;
    });
  } finally {
    progress?.finish();
    closeInstallClients();
  }
  if (flags.output === 'json') {
    printJson(resultsJson(results));
  } else {
    if (flags.dryRun) for (const r of results) if (r.ok) process.stdout.write(`\n${planReport(r)}`);
    process.stdout.write(`\n${resultReport(results)}`);
  }
  process.exitCode = results.every((r) => r.ok) ? EXIT.ok : EXIT.failure;
}
