/**
 * Installing agents on hosts over SSH: the logic behind `drover agent
 * install` and `drover agent uninstall` (see docs/install.md), usable from
 * code as `drover/install`.
 */
import pLimit from 'p-limit';

export { binaryInfo, binaryName, elfArch, findBinary } from './binary.js';
export type { AgentArch, AgentFileConfig, ExistingInstall, HostFacts, Manifest } from './facts.js';
export { renderConfig, renderSupervisor, renderUnit } from './files.js';
export {
  closeInstallClients,
  defaultDeps,
  installAgent,
  uninstallAgent,
  type HostOutcome,
  type HostResult,
  type InstallDeps,
  type InstallEvents,
  type UninstallExtra,
} from './install.js';
export { parseInventory, readInventory, type InventoryHost } from './inventory.js';
export { addKnownHost, checkHostKey, fingerprint, keysFor } from '../../common/known-hosts.js';
export { layoutFor, type Layout } from './layout.js';
export { parseLabelArgs, resolveInstallOptions, type InstallOptions, type ResolvedInstallOptions } from './options.js';
export { planInstall, planUninstall, type Action, type InstallPlan } from './plan.js';
export { SshHost, type ConnectOptions, type ExecResult, type RemoteHost } from './ssh.js';
export { formatTarget, parseTarget, type SshTarget } from './target.js';

/** Hosts installed at once unless told otherwise (`--parallel`). */
export const DEFAULT_PARALLEL = 8;

/**
 * Runs `fn` for every item with at most `parallel` at a time; results keep
 * the items' order. `fn` should not throw (installAgent never does).
 */
export function forEachHost<T, R>(items: readonly T[], parallel: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const limit = pLimit(Math.max(1, parallel));
  return Promise.all(items.map((item) => limit(() => fn(item))));
}
