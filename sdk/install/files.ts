/**
 * The files the installer writes on a host: the agent config, the systemd
 * unit, and the POSIX sh supervisor used where systemd is not PID 1.
 */
import { stringify } from 'yaml';
import type { AgentFileConfig, Tool } from './facts.js';
import type { Layout } from './layout.js';
import { quote } from './shell.js';

/** The PATH daemons get (systemd's default): the agent's steps inherit it. */
export const DAEMON_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The agent config (YAML), as `drover-agent --config` reads it. */
export function renderConfig(cfg: AgentFileConfig): string {
  const doc: Record<string, unknown> = { server: cfg.server, name: cfg.name, labels: cfg.labels, stateDir: cfg.stateDir };
  if (cfg.token) doc.token = cfg.token;
  return `# drover-agent configuration, written by \`drover agent install\`; read with --config.\n${stringify(doc)}`;
}

/**
 * `command` (an sh command line) run as `user` from root, with the tool the
 * host has: setpriv, runuser, else su. Root (or no user) runs it as is.
 */
export function asUser(user: string, command: string, tools: ReadonlySet<Tool>): string {
  if (user === 'root') return command;
  const u = quote(user);
  if (tools.has('setpriv')) return `setpriv --reuid="$(id -u ${u})" --regid="$(id -g ${u})" --init-groups -- ${command}`;
  if (tools.has('runuser')) return `runuser -u ${u} -- ${command}`;
  return `su -s /bin/sh -c ${quote(`exec ${command}`)} ${u}`;
}

/**
 * The systemd unit. Restart=always with a short pause; the agent's own
 * backoff handles the control plane being away. KillMode=process: stopping or
 * restarting the unit (an upgrade) stops the agent only; the steps it runs
 * are in sessions of their own and go on, and the agent re-attaches to them
 * when it starts again (as Nomad's client does).
 */
export function renderUnit(layout: Layout, user: string): string {
  return [
    '# Drover agent, installed by `drover agent install`.',
    '[Unit]',
    'Description=Drover agent',
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `User=${user}`,
    `ExecStart=${layout.bin} --config ${layout.config}`,
    'Restart=always',
    'RestartSec=2',
    'TimeoutStopSec=15',
    'KillMode=process',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** Seconds the supervisor's `stop` waits for the agent before SIGKILL. */
export const STOP_TIMEOUT_S = 10;

/**
 * The fallback supervisor: one POSIX sh file with start/stop/status/run. `run`
 * is the restart loop (pidfile, restart after 1 s, doubling to 60 s while the
 * agent keeps dying within a minute); `start` runs it in a new session with
 * setsid and nohup, as the service user and with a clean environment, its
 * output appended to the log file.
 */
export function renderSupervisor(layout: Layout, user: string, tools: ReadonlySet<Tool>): string {
  const q = quote;
  const self = layout.supervisor;
  const env = `env -i PATH=${DAEMON_PATH} HOME=${q(layout.stateDir)} USER=${q(user)} LOGNAME=${q(user)} LANG=C.UTF-8`;
  const detach = `${tools.has('setsid') ? 'setsid ' : ''}nohup`;
  const launch = `${detach} ${asUser(user, `${env} ${q(self)} run`, tools)}`;
  return `#!/bin/sh
# Drover agent supervisor, installed by \`drover agent install\` on a host
# where systemd is not PID 1. It keeps one agent running and restarts it when
# it exits. It does not start at boot: see docs/install.md.
#   ${self} start    start it in the background (as ${user})
#   ${self} stop     stop it and the agent
#   ${self} status   exit 0 when it is running
#   ${self} run      the restart loop itself (what start runs)
PATH=${DAEMON_PATH}
export PATH
BIN=${q(layout.bin)}
CONFIG=${q(layout.config)}
LOG=${q(layout.logFile)}
PIDFILE=${q(`${layout.runDir}/supervisor.pid`)}
AGENT_PIDFILE=${q(`${layout.runDir}/agent.pid`)}

running() {
  pid=$(cat "$PIDFILE" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
    grep -q supervise "/proc/$pid/cmdline" 2>/dev/null
}

log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) supervisor: $*" >&2; }

case "$1" in
run)
  echo $$ > "$PIDFILE"
  child=
  sleeper=
  shutdown() {
    trap - TERM INT
    [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null
    [ -n "$child" ] && kill -TERM "$child" 2>/dev/null && wait "$child"
    rm -f "$PIDFILE" "$AGENT_PIDFILE"
    log "stopped"
    exit 0
  }
  trap shutdown TERM INT
  delay=1
  while :; do
    started=$(date +%s)
    "$BIN" --config "$CONFIG" &
    child=$!
    echo "$child" > "$AGENT_PIDFILE"
    wait "$child"
    code=$?
    if [ $(( $(date +%s) - started )) -ge 60 ]; then delay=1; fi
    log "drover-agent exited with status $code; restarting in \${delay}s"
    sleep "$delay" &
    sleeper=$!
    wait "$sleeper"
    sleeper=
    delay=$(( delay * 2 )); [ "$delay" -gt 60 ] && delay=60
  done
  ;;
start)
  if running; then echo "drover-agent supervisor already running (pid $pid)"; exit 0; fi
  cd / || exit 1
  ${launch} </dev/null >>"$LOG" 2>&1 &
  i=0
  while [ $i -lt 50 ]; do
    if running; then echo "drover-agent supervisor started (pid $pid)"; exit 0; fi
    sleep 0.1; i=$((i + 1))
  done
  echo "the drover-agent supervisor did not start; last lines of $LOG:" >&2
  tail -n 20 "$LOG" >&2
  exit 1
  ;;
stop)
  if running; then
    kill -TERM "$pid"
    i=0
    while [ $i -lt ${STOP_TIMEOUT_S * 10} ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  # an agent left behind by a supervisor that was killed
  apid=$(cat "$AGENT_PIDFILE" 2>/dev/null) && [ -n "$apid" ] && kill -0 "$apid" 2>/dev/null &&
    grep -q drover-agent "/proc/$apid/cmdline" 2>/dev/null && kill -KILL "$apid"
  rm -f "$PIDFILE" "$AGENT_PIDFILE"
  exit 0
  ;;
status)
  if running; then echo "running (pid $pid)"; exit 0; fi
  echo "stopped"; exit 3
  ;;
*)
  echo "usage: $0 start|stop|status|run" >&2; exit 2
  ;;
esac
`;
}
