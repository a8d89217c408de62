/**
 * What the installer learns about a host before it changes anything: two
 * read-only probes (one as the login user, one with sudo when that user is
 * not root to read the root-only config) and their parsing. Pure text in,
 * facts out, so the planner can be tested without a host.
 */
import { posix } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { Layout } from './layout.js';
import { quote } from './shell.js';

/** CPU architectures agents are built for, in Node's spelling. */
export type AgentArch = 'x64' | 'arm64';

/** `uname -m` → the agent build; anything else is unsupported. */
export const UNAME_ARCH: Record<string, AgentArch> = { x86_64: 'x64', amd64: 'x64', aarch64: 'arm64', arm64: 'arm64' };

/** Commands the plan may use, looked up on the host with `command -v`. */
export const TOOLS = [
  'sha256sum', 'useradd', 'userdel', 'adduser', 'deluser', 'setpriv', 'runuser', 'su',
  'setsid', 'nohup', 'systemctl', 'journalctl', 'sudo', 'df', 'tail',
] as const;
export type Tool = (typeof TOOLS)[number];

/** What the unprivileged probe found. */
export interface HostFacts {
  /** `uname -s`, e.g. Linux. */
  os: string;
  /** `uname -m`, e.g. x86_64. */
  machine: string;
  /** The agent build for `machine`, when there is one. */
  arch?: AgentArch;
  hostname: string;
  uid: number;
  user: string;
  /** The name of PID 1 (/proc/1/comm). */
  pid1: string;
  /** True when systemd is PID 1 and systemctl is there. */
  systemd: boolean;
  tools: Set<Tool>;
  /** Whether the service user already exists. */
  serviceUserExists: boolean;
  /** Free KiB on the file system that will hold the binary. */
  freeKbBin: number;
  /** Free KiB in /tmp (sudo uploads are staged there). */
  freeKbTmp: number;
  /** Layout directories that exist already (install removes only those it created). */
  existingDirs: string[];
}

/** The installer's record of an install, kept at layout.manifest. */
export interface Manifest {
  /** Format version of this record. */
  format: 1;
  /** `installing` from the first change until the agent is connected; then `installed`. */
  state: 'installing' | 'installed';
  /** When this install (or the unfinished one it completes) started, ISO 8601. */
  startedAt: string;
  /** True when the host had no agent before the unfinished attempt: rolling back removes everything. */
  fresh: boolean;
  name: string;
  init: 'systemd' | 'supervisor';
  serviceUser: string;
  /** True when install created the service user (uninstall --purge deletes it). */
  createdUser: boolean;
  /** Layout directories install created (uninstall removes them when empty). */
  createdDirs: string[];
  /** `drover-agent --version` of the installed binary. */
  agentVersion: string;
}

/** The agent configuration the installer writes (what the agent's --config reads). */
export interface AgentFileConfig {
  server: string;
  name: string;
  labels: Record<string, string>;
  stateDir: string;
  token?: string;
}

/** What the privileged probe found of an earlier install. */
export interface ExistingInstall {
  manifest?: Manifest;
  config?: Partial<AgentFileConfig>;
  binary: boolean;
  stateDir: boolean;
  unit: boolean;
  supervisor: boolean;
  /** Whether the supervisor (or the systemd unit) is running now. */
  running: boolean;
}

/** The unprivileged probe: read-only, one round trip. */
export function factsProbe(layout: Layout, serviceUser: string): string {
  const binDir = posix.dirname(layout.bin);
  const dirs = [...new Set([layout.prefix, binDir, posix.dirname(layout.config), posix.dirname(layout.supervisor), posix.dirname(layout.logFile), layout.stateDir, layout.runDir].filter(Boolean))];
  return [
    // A login user's PATH often lacks the sbin dirs that useradd and runuser live in (sudo's secure_path has them).
    'PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"',
    'echo "os=$(uname -s 2>/dev/null)"',
    'echo "machine=$(uname -m 2>/dev/null)"',
    'echo "hostname=$(uname -n 2>/dev/null)"',
    'echo "uid=$(id -u 2>/dev/null)"',
    'echo "user=$(id -un 2>/dev/null)"',
    'echo "pid1=$(cat /proc/1/comm 2>/dev/null)"',
    `for t in ${TOOLS.join(' ')}; do command -v "$t" >/dev/null 2>&1 && echo "tool=$t"; done`,
    `id -u ${quote(serviceUser)} >/dev/null 2>&1 && echo "service_user_exists=1"`,
    'avail() { d=$1; while [ ! -d "$d" ]; do d=$(dirname "$d"); done; df -Pk "$d" 2>/dev/null | awk \'NR==2 {print $4}\'; }',
    `echo "free_bin_kb=$(avail ${quote(binDir)})"`,
    'echo "free_tmp_kb=$(avail /tmp)"',
    `for d in ${dirs.map(quote).join(' ')}; do [ -d "$d" ] && echo "dir=$d"; done`,
    'true',
  ].join('\n');
}

function kv(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i <= 0) continue;
    const k = line.slice(0, i).trim();
    out.set(k, [...(out.get(k) ?? []), line.slice(i + 1).trim()]);
  }
  return out;
}

/** Parses the unprivileged probe's output. */
export function parseFacts(text: string): HostFacts {
  const m = kv(text);
  const one = (k: string) => m.get(k)?.[0] ?? '';
  const tools = new Set((m.get('tool') ?? []).filter((t): t is Tool => (TOOLS as readonly string[]).includes(t)));
  const pid1 = one('pid1');
  const machine = one('machine');
  return {
    os: one('os'),
    machine,
    arch: UNAME_ARCH[machine],
    hostname: one('hostname'),
    uid: one('uid') === '' ? -1 : Number(one('uid')),
    user: one('user'),
    pid1,
    systemd: pid1 === 'systemd' && tools.has('systemctl'),
    tools,
    serviceUserExists: one('service_user_exists') === '1',
    freeKbBin: Number(one('free_bin_kb')) || 0,
    freeKbTmp: Number(one('free_tmp_kb')) || 0,
    existingDirs: m.get('dir') ?? [],
  };
}

const SECTION = '@@drover-section@@';

/** The privileged probe (run with sudo when the login user is not root): reads an earlier install. */
export function existingProbe(layout: Layout): string {
  const section = (name: string) => `echo ${quote(`${SECTION} ${name}`)}`;
  return [
    `if [ -f ${quote(layout.manifest)} ]; then ${section('manifest')}; cat ${quote(layout.manifest)}; echo; fi`,
    `if [ -f ${quote(layout.config)} ]; then ${section('config')}; cat ${quote(layout.config)}; echo; fi`,
    `${section('flags')}`,
    `[ -f ${quote(layout.bin)} ] && echo binary`,
    `[ -d ${quote(layout.stateDir)} ] && echo stateDir`,
    `[ -f ${quote(layout.unit)} ] && echo unit`,
    `[ -f ${quote(layout.supervisor)} ] && echo supervisor`,
    `if [ -x ${quote(layout.supervisor)} ]; then ${quote(layout.supervisor)} status >/dev/null 2>&1 && echo running; ` +
      `elif command -v systemctl >/dev/null 2>&1 && [ -f ${quote(layout.unit)} ]; then systemctl is-active --quiet ${quote(layout.unitName)} && echo running; fi`,
    'true',
  ].join('\n');
}

/** Parses the privileged probe's output. */
export function parseExisting(text: string): ExistingInstall {
  const sections = new Map<string, string>();
  let current = '';
  for (const line of text.split('\n')) {
    if (line.startsWith(SECTION)) {
      current = line.slice(SECTION.length).trim();
      sections.set(current, '');
    } else if (current) {
      sections.set(current, `${sections.get(current)}${line}\n`);
    }
  }
  const flags = new Set((sections.get('flags') ?? '').split('\n').map((l) => l.trim()).filter(Boolean));
  let manifest: Manifest | undefined;
  try {
    const parsed = JSON.parse(sections.get('manifest') ?? '') as Manifest;
    if (parsed && parsed.format === 1) manifest = parsed;
  } catch {
    // no manifest, or a torn one: treated as an install of unknown origin
  }
  let config: Partial<AgentFileConfig> | undefined;
  try {
    const parsed: unknown = sections.has('config') ? parseYaml(sections.get('config')!) : undefined;
    if (parsed && typeof parsed === 'object') config = parsed as Partial<AgentFileConfig>;
  } catch {
    // an unreadable config is rewritten
  }
  return {
    manifest,
    config,
    binary: flags.has('binary'),
    stateDir: flags.has('stateDir'),
    unit: flags.has('unit'),
    supervisor: flags.has('supervisor'),
    running: flags.has('running'),
  };
}
