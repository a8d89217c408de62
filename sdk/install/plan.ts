/**
 * The installer's plans: from what the probes found and what was asked, the
 * exact remote commands that install, roll back, commit or uninstall an
 * agent. Pure: no I/O, so `--dry-run` prints exactly what a real run sends
 * and unit tests check the plans without a host.
 *
 * Install is a small transaction. The first action records it as
 * `installing` in the manifest; the agent's files are replaced by rename
 * (the previous ones kept as `*.prev` hard links); once the agent is
 * connected the commit removes the `.prev` files and records `installed`.
 * When anything fails, the rollback puts back the `.prev` files (an upgrade)
 * or removes everything (a first install). A manifest still saying
 * `installing` marks a half-finished earlier install: the next install
 * completes it, and a failure then rolls back to the state before it.
 */
import { posix } from 'node:path';
import type { AgentFileConfig, ExistingInstall, HostFacts, Manifest } from './facts.js';
import { asUser, renderConfig, renderSupervisor, renderUnit } from './files.js';
import { layoutDirs, type Layout } from './layout.js';
import { argv, quote } from './shell.js';

/** One remote command. */
export interface Action {
  /** Stable key: the orchestrator reads some results by it (e.g. `check`). */
  id: string;
  /** What it does, for progress lines and --dry-run. */
  title: string;
  /** The command line sent over SSH, exactly. */
  command: string;
  /** True when it runs through sudo. */
  sudo: boolean;
  /** Piped to the command's stdin: a file's text (secret: masked in --dry-run), or a local file. */
  stdin?: { text: string; secret?: string } | { file: string; bytes: number };
}

/** The local agent binary to install. */
export interface BinaryInfo {
  path: string;
  sha256: string;
  bytes: number;
}

/** Everything an install plan is computed from. */
export interface InstallInput {
  layout: Layout;
  facts: HostFacts;
  existing: ExistingInstall;
  binary: BinaryInfo;
  config: AgentFileConfig;
  /** The account the agent runs as; 'root' for no service user. */
  serviceUser: string;
  init: 'systemd' | 'supervisor';
  /** Random suffix for temp names. */
  nonce: string;
  /** ISO time recorded in the manifest. */
  now: string;
}

/** What happens to a host. */
export type InstallKind = 'install' | 'upgrade' | 'complete';

export interface InstallPlan {
  kind: InstallKind;
  /** Run in order; the agent is connected-checked after the last. */
  actions: Action[];
  /** The actions run once the agent is connected, recording the version it reports. */
  commit(agentVersion: string): Action[];
  /** Run (best effort, in order) when an action or the connected-check fails. */
  rollback: Action[];
  /** Things the operator should know (half-finished install found, no service user possible, ...). */
  notes: string[];
  /** True when any action needs sudo. */
  sudo: boolean;
}

/** Wraps a script for the host: `sh -c '…'`, through `sudo -n` when the login user is not root. */
export function remote(script: string, sudo: boolean): string {
  return `${sudo ? 'sudo -n ' : ''}sh -c ${quote(script)}`;
}

/** The marker in the service user's GECOS field: uninstall --purge deletes only users that carry it. */
export const USER_COMMENT = 'drover agent, created by drover agent install';

function newBinaryPath(l: Layout, nonce: string): string {
  return `${posix.dirname(l.bin)}/.drover-agent.new-${nonce}`;
}

function serviceFile(l: Layout, init: 'systemd' | 'supervisor'): string {
  return init === 'systemd' ? l.unit : l.supervisor;
}

/** Stops whatever agent service exists (idempotent). */
function stopScript(l: Layout, existing: Pick<ExistingInstall, 'unit' | 'supervisor'>, init?: 'systemd' | 'supervisor'): string {
  const parts: string[] = [];
  if (existing.supervisor || init === 'supervisor') parts.push(`if [ -x ${quote(l.supervisor)} ]; then ${quote(l.supervisor)} stop; fi`);
  if (existing.unit || init === 'systemd') parts.push(`if [ -f ${quote(l.unit)} ]; then systemctl stop ${quote(l.unitName)} || true; fi`);
  return parts.join('\n') || 'true';
}

function userCreateScript(user: string, home: string, facts: HostFacts): string | undefined {
  const u = quote(user);
  const shell = '"$(command -v nologin || echo /bin/false)"';
  if (facts.tools.has('useradd')) {
    return `id -u ${u} >/dev/null 2>&1 || useradd --system --user-group --no-create-home --home-dir ${quote(home)} --shell ${shell} --comment ${quote(USER_COMMENT)} ${u}`;
  }
  if (facts.tools.has('adduser')) {
    // BusyBox adduser: -S system, -D no password, -H no home dir.
    return `id -u ${u} >/dev/null 2>&1 || adduser -S -D -H -h ${quote(home)} -s /bin/false -g ${quote(USER_COMMENT)} ${u}`;
  }
  return undefined;
}

/** Deletes the service user when install created it (its GECOS carries USER_COMMENT). */
function userDeleteScript(user: string): string {
  const u = quote(user);
  return (
    `if getent passwd ${u} 2>/dev/null | cut -d: -f5 | grep -qF ${quote(USER_COMMENT)}; then ` +
    `if command -v userdel >/dev/null 2>&1; then userdel ${u}; else deluser ${u}; fi; fi`
  );
}

function writeFile(path: string, mode: string, owner?: string): string {
  const tmp = `${path}.new`;
  return [
    `umask 077`,
    `cat > ${quote(tmp)}`,
    ...(owner && owner !== 'root' ? [`chown ${quote(`${owner}:`)} ${quote(tmp)}`] : []),
    `chmod ${mode} ${quote(tmp)}`,
    `mv -f ${quote(tmp)} ${quote(path)}`,
  ].join(' && ');
}

function manifestText(m: Manifest & { previous?: Manifest }): string {
  return `${JSON.stringify(m, null, 2)}\n`;
}

/** Removes empty directories, deepest first. */
function rmdirScript(dirs: string[]): string | undefined {
  if (dirs.length === 0) return undefined;
  const sorted = [...dirs].sort((a, b) => b.length - a.length);
  return `for d in ${sorted.map(quote).join(' ')}; do rmdir "$d" 2>/dev/null || true; done`;
}

/** The install (or upgrade, or completion) plan for one host. */
export function planInstall(input: InstallInput): InstallPlan {
  const { layout: l, facts, existing, binary, config, init, nonce } = input;
  const sudo = facts.uid !== 0;
  const notes: string[] = [];
  const act = (id: string, title: string, script: string, stdin?: Action['stdin'], asSudo = sudo): Action => ({
    id,
    title,
    command: remote(script, asSudo),
    sudo: asSudo,
    ...(stdin ? { stdin } : {}),
  });

  const earlier = existing.manifest?.state === 'installing' ? (existing.manifest as Manifest & { previous?: Manifest }) : undefined;
  const hadInstall = Boolean(existing.manifest || existing.binary || existing.config);
  const kind: InstallKind = earlier ? 'complete' : hadInstall ? 'upgrade' : 'install';
  if (earlier) {
    notes.push(
      `a half-finished install (started ${earlier.startedAt}) was found; it is completed now, or rolled back to the state before it if this install fails`,
    );
  } else if (hadInstall && !existing.manifest) {
    notes.push('drover-agent files without an install record were found; they are replaced, and restored if this install fails');
  }
  // The baseline a rollback returns to: the state before the first unfinished attempt.
  const fresh = earlier ? earlier.fresh : !hadInstall;
  const previous = earlier ? earlier.previous : existing.manifest?.state === 'installed' ? existing.manifest : undefined;

  let user = input.serviceUser;
  let createUser: string | undefined;
  if (user !== 'root' && !facts.serviceUserExists) {
    createUser = userCreateScript(user, l.stateDir, facts);
    if (!createUser) {
      notes.push(`neither useradd nor adduser exists on the host, so no service user can be created: the agent runs as root`);
      user = 'root';
    }
  }
  if (user !== 'root' && !['setpriv', 'runuser', 'su'].some((t) => facts.tools.has(t as 'su')) && init === 'supervisor') {
    notes.push('no setpriv, runuser or su on the host to drop privileges: the agent runs as root');
    user = 'root';
  }

  const dirs = layoutDirs(l).filter((d) => init === 'supervisor' || (d !== posix.dirname(l.supervisor) && d !== posix.dirname(l.logFile) && d !== l.runDir));
  // What install created stays recorded across upgrades, so uninstall can remove it.
  const createdDirs = [...new Set([...(earlier?.createdDirs ?? previous?.createdDirs ?? []), ...dirs.filter((d) => !facts.existingDirs.includes(d))])];
  const manifest: Manifest & { previous?: Manifest } = {
    format: 1,
    state: 'installing',
    startedAt: earlier?.startedAt ?? input.now,
    fresh,
    name: config.name,
    init,
    serviceUser: user,
    createdUser: Boolean(createUser) || Boolean(earlier?.createdUser) || Boolean(previous?.createdUser),
    createdDirs,
    agentVersion: '',
    ...(previous ? { previous } : {}),
  };

  const newBin = newBinaryPath(l, nonce);
  const staging = sudo ? `/tmp/drover-agent.${nonce}` : newBin;
  const svc = serviceFile(l, init);
  const owned = [l.stateDir, ...(init === 'supervisor' ? [posix.dirname(l.logFile), l.runDir] : [])];
  const actions: Action[] = [];

  actions.push(
    act(
      'begin',
      'record the install as in progress',
      `mkdir -p ${quote(posix.dirname(l.manifest))} && ${writeFile(l.manifest, '600')}`,
      { text: manifestText(manifest) },
    ),
  );
  if (createUser) actions.push(act('user', `create the service user ${user}`, createUser));
  actions.push(
    act(
      'dirs',
      'create the directories',
      [
        `umask 022`,
        `mkdir -p ${dirs.map(quote).join(' ')}`,
        `chmod 700 ${quote(l.stateDir)}`,
        ...(user !== 'root' ? [`chown -R ${quote(`${user}:`)} ${owned.map(quote).join(' ')}`] : []),
      ].join(' && '),
    ),
  );
  actions.push({
    id: 'upload',
    title: `upload the agent binary (${(binary.bytes / 2 ** 20).toFixed(1)} MiB)${sudo ? ' to /tmp' : ''}`,
    command: remote(`umask 077 && cat > ${quote(staging)}`, false),
    sudo: false,
    stdin: { file: binary.path, bytes: binary.bytes },
  });
  actions.push(
    act(
      'verify',
      'verify its SHA-256 on the host',
      [
        ...(sudo ? [`cp ${quote(staging)} ${quote(newBin)}`, `rm -f ${quote(staging)}`] : []),
        `echo ${quote(`${binary.sha256}  ${newBin}`)} | sha256sum -c - >/dev/null`,
        `chmod 755 ${quote(newBin)}`,
      ].join(' && '),
    ),
  );
  actions.push(act('check', `check that ${user} can run it`, asUser(user, `${quote(newBin)} --version`, facts.tools)));
  if (!fresh) {
    const backups = [l.bin, l.config, svc].filter((f) => f);
    actions.push(
      act(
        'backup',
        'keep the current files for a rollback',
        `for f in ${backups.map(quote).join(' ')}; do if [ -e "$f" ] && [ ! -e "$f.prev" ]; then ln -f "$f" "$f.prev" 2>/dev/null || cp -p "$f" "$f.prev"; fi; done`,
      ),
    );
  }
  actions.push(
    act('config', `write ${l.config} (mode 0600)`, writeFile(l.config, '600', user), {
      text: renderConfig(config),
      ...(config.token ? { secret: config.token } : {}),
    }),
  );
  if (init === 'systemd') {
    actions.push(
      act(
        'service',
        `install the systemd unit ${l.unitName}`,
        `${writeFile(l.unit, '644')} && systemctl daemon-reload && systemctl enable --quiet ${quote(l.unitName)}`,
        { text: renderUnit(l, user) },
      ),
    );
  } else {
    actions.push(act('service', `install the supervisor ${l.supervisor}`, writeFile(l.supervisor, '755'), { text: renderSupervisor(l, user, facts.tools) }));
  }
  if (existing.binary || existing.running || existing.unit || existing.supervisor) {
    actions.push(act('stop', 'stop the running agent', stopScript(l, existing, init)));
  }
  actions.push(act('swap', `move the binary into place at ${l.bin}`, `mv -f ${quote(newBin)} ${quote(l.bin)}`));
  actions.push(
    act(
      'start',
      'start the agent',
      init === 'systemd' ? `systemctl restart ${quote(l.unitName)}` : argv(l.supervisor, 'start'),
    ),
  );

  const commit = (agentVersion: string): Action[] => {
    const done: Manifest = { ...manifest, state: 'installed', agentVersion };
    delete (done as { previous?: Manifest }).previous;
    return [
      act(
        'commit',
        'record the install as complete',
        [`rm -f ${prevFiles}`, writeFile(l.manifest, '600')].join(' && '),
        { text: manifestText(done) },
      ),
    ];
  };

  const prevFiles = [l.bin, l.config, svc].map((f) => quote(`${f}.prev`)).join(' ');
  const cleanTemps = `rm -f ${[...new Set([newBin, staging, `${l.config}.new`, `${svc}.new`, `${l.manifest}.new`])].map(quote).join(' ')}`;
  const rollback: Action[] = [];
  if (fresh) {
    rollback.push(act('rollback-stop', 'stop the new agent', stopScript(l, { unit: init === 'systemd', supervisor: init === 'supervisor' })));
    const script = [
      cleanTemps,
      ...(init === 'systemd'
        ? [`systemctl disable --quiet ${quote(l.unitName)} 2>/dev/null || true`, `rm -f ${quote(l.unit)}`, 'systemctl daemon-reload || true']
        : [`rm -f ${quote(l.supervisor)}`, `rm -rf ${quote(l.runDir)}`, `rm -f ${quote(l.logFile)}`]),
      `rm -f ${[l.bin, l.config, l.manifest].map(quote).join(' ')} ${prevFiles}`,
      ...(createdDirs.includes(l.stateDir) ? [`rm -rf ${quote(l.stateDir)}`] : []),
      ...(manifest.createdUser ? [userDeleteScript(user)] : []),
      rmdirScript(createdDirs) ?? 'true',
    ];
    rollback.push(act('rollback-remove', 'remove what this install added', script.join('\n')));
  } else {
    rollback.push(act('rollback-stop', 'stop the new agent', stopScript(l, { unit: true, supervisor: true })));
    const restore = [
      cleanTemps,
      `for f in ${[l.bin, l.config, l.unit, l.supervisor].map(quote).join(' ')}; do if [ -e "$f.prev" ]; then mv -f "$f.prev" "$f"; fi; done`,
      ...(init === 'systemd' ? ['systemctl daemon-reload || true'] : []),
    ];
    rollback.push(act('rollback-restore', 'restore the previous binary, config and service', restore.join('\n')));
    if (previous) {
      rollback.push(act('rollback-record', 'restore the previous install record', writeFile(l.manifest, '600'), { text: manifestText(previous) }));
    }
    const prevInit = previous?.init ?? (existing.unit ? 'systemd' : 'supervisor');
    rollback.push(
      act(
        'rollback-start',
        'start the previous agent',
        prevInit === 'systemd' ? `systemctl restart ${quote(l.unitName)}` : `if [ -x ${quote(l.supervisor)} ]; then ${argv(l.supervisor, 'start')}; fi`,
      ),
    );
  }

  return { kind, actions, commit, rollback, notes, sudo };
}

/** Everything an uninstall plan is computed from. */
export interface UninstallInput {
  layout: Layout;
  facts: HostFacts;
  existing: ExistingInstall;
  /** Also remove the state dir, the log, and the service user install created. */
  purge: boolean;
}

/** The uninstall plan; empty when nothing of an agent is on the host. */
export function planUninstall(input: UninstallInput): { actions: Action[]; sudo: boolean; notes: string[] } {
  const { layout: l, facts, existing, purge } = input;
  const sudo = facts.uid !== 0;
  const notes: string[] = [];
  const present = existing.manifest || existing.binary || existing.config || existing.unit || existing.supervisor || (purge && existing.stateDir);
  if (!present) return { actions: [], sudo, notes: ['no drover agent is installed here'] };
  if (existing.manifest?.state === 'installing') notes.push('a half-finished install was found; everything it added is removed');
  const act = (id: string, title: string, script: string): Action => ({ id, title, command: remote(script, sudo), sudo });
  const user = existing.manifest?.serviceUser ?? 'drover-agent';
  const actions: Action[] = [];
  actions.push(act('stop', 'stop the agent', stopScript(l, { unit: true, supervisor: true })));
  actions.push(
    act(
      'service',
      'remove the service',
      [
        `if [ -f ${quote(l.unit)} ]; then systemctl disable --quiet ${quote(l.unitName)} 2>/dev/null || true; rm -f ${quote(l.unit)} ${quote(`${l.unit}.prev`)}; systemctl daemon-reload || true; fi`,
        `rm -f ${[l.supervisor, `${l.supervisor}.prev`, `${l.supervisor}.new`].map(quote).join(' ')}`,
        `rm -rf ${quote(l.runDir)}`,
      ].join('\n'),
    ),
  );
  actions.push(
    act(
      'files',
      'remove the binary, config and install record',
      [
        `rm -f ${[l.bin, `${l.bin}.prev`, l.config, `${l.config}.prev`, `${l.config}.new`, l.manifest, `${l.manifest}.new`].map(quote).join(' ')}`,
        `rm -f ${quote(posix.dirname(l.bin))}/.drover-agent.new-*`,
      ].join('\n'),
    ),
  );
  if (purge) {
    actions.push(act('purge', `remove the state dir ${l.stateDir}, the log and the service user`, [`rm -rf ${quote(l.stateDir)} ${quote(l.logFile)}`, userDeleteScript(user)].join('\n')));
  } else if (existing.stateDir) {
    notes.push(`kept the state dir ${l.stateDir} and the service user (remove them with --purge)`);
  }
  const candidates = existing.manifest?.createdDirs ?? layoutDirs(l).filter((d) => !['/usr/local/bin', '/run'].includes(d));
  const rmdirs = rmdirScript(candidates);
  if (rmdirs) actions.push(act('dirs', 'remove the directories install created, when empty', rmdirs));
  return { actions, sudo, notes };
}
