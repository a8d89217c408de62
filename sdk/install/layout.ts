/**
 * Where an installed agent's files live on a host: the default system layout,
 * or everything under one directory with `--prefix`.
 */
import { posix } from 'node:path';
import { InvalidInputError } from '../errors.js';

/** Every path the installer writes or removes on a host. */
export interface Layout {
  /** The `--prefix` directory, or '' for the system layout. */
  prefix: string;
  /** The agent binary. */
  bin: string;
  /** The agent's configuration, read with `--config` (mode 0600). */
  config: string;
  /** The installer's record of the install (JSON), next to the config. */
  manifest: string;
  /** The agent's state directory: journal, ledger, step work dirs. Kept by uninstall unless --purge. */
  stateDir: string;
  /** The systemd unit (used when systemd is PID 1). */
  unit: string;
  /** The systemd unit name. */
  unitName: string;
  /** The POSIX sh supervisor (used when systemd is not PID 1). */
  supervisor: string;
  /** The supervised agent's log (supervisor only; systemd uses the journal). */
  logFile: string;
  /** Holds the supervisor's and the agent's pidfiles (supervisor only). */
  runDir: string;
}

/** The systemd unit name; also the name of the default service user. */
export const SERVICE_NAME = 'drover-agent';

/** The layout for a prefix ('' or undefined: the system layout). */
export function layoutFor(prefix = ''): Layout {
  const unit = `/etc/systemd/system/${SERVICE_NAME}.service`;
  if (!prefix) {
    return {
      prefix: '',
      bin: '/usr/local/bin/drover-agent',
      config: '/etc/drover/agent.yaml',
      manifest: '/etc/drover/agent.install.json',
      stateDir: '/var/lib/drover-agent',
      unit,
      unitName: SERVICE_NAME,
      supervisor: '/usr/local/lib/drover-agent/supervise.sh',
      logFile: '/var/log/drover-agent/agent.log',
      runDir: '/run/drover-agent',
    };
  }
  const root = posix.normalize(prefix).replace(/\/+$/, '');
  if (!posix.isAbsolute(root) || root === '' || /[\s'"\\$`]/.test(root)) {
    throw new InvalidInputError(`--prefix "${prefix}" must be an absolute path without spaces or quotes`, {
      hint: 'for example --prefix /opt/drover',
    });
  }
  return {
    prefix: root,
    bin: `${root}/bin/drover-agent`,
    config: `${root}/etc/agent.yaml`,
    manifest: `${root}/etc/agent.install.json`,
    stateDir: `${root}/state`,
    unit,
    unitName: SERVICE_NAME,
    supervisor: `${root}/lib/supervise.sh`,
    logFile: `${root}/log/agent.log`,
    runDir: `${root}/run`,
  };
}

/** The directories install creates when they are missing, parents first. */
export function layoutDirs(l: Layout): string[] {
  const dirs = [l.prefix, ...[l.bin, l.config, l.supervisor, l.logFile].map((p) => posix.dirname(p)), l.stateDir, l.runDir].filter(Boolean);
  return [...new Set(dirs)];
}
