/**
 * One SSH connection from a proxy agent to a network device (node-ssh over
 * ssh2), and the two ways of running a command on it:
 *
 * - shell: one interactive shell channel with a pseudo-terminal, kept open
 *   across commands (and across steps: see pool.ts). A command is written as
 *   a line; its output is everything up to the next prompt (a last,
 *   unterminated line matching the prompt pattern that stays unchanged for
 *   SETTLE_MS). The terminal's echo of the command is dropped, ANSI escapes,
 *   carriage-return redraws and backspaces are applied, and a pager prompt
 *   (`--More--`) is answered with a space. This is how line-oriented device
 *   CLIs (IOS, NX-OS, EOS, Junos, VRP, RouterOS) are driven by people, and the
 *   only way that keeps state between commands (`configure terminal`).
 * - exec: one SSH exec channel per command, with the command's exit status;
 *   for devices and appliances whose SSH server runs commands directly.
 *
 * Host keys are checked against known_hosts before any credential is sent.
 */
import { StringDecoder } from 'node:string_decoder';
import { NodeSSH } from 'node-ssh';
import type { ClientChannel } from 'ssh2';
import { addKnownHost, checkHostKey, fingerprint, hostEntryName, hostKeyAlgorithms, keysFor, keyTypeOf, readKnownHosts, type HostKeyCheck } from '../../../common/known-hosts.js';
import type { Pattern } from '../../../common/pattern.js';
import type { Credential } from './credentials.js';

/** Where a device is, and how messages name it. */
export interface DeviceAddress {
  host: string;
  port: number;
  user: string;
  /** The device's inventory name, or host:port for an inline host. */
  label: string;
}

/** How host keys are trusted. */
export interface HostKeyPolicy {
  /** Checked, and appended to with acceptNew. */
  knownHosts: string;
  /** Add an unknown device's key (a changed key is always refused). */
  acceptNew: boolean;
}

export type SshErrorCode = 'HOST_KEY_UNKNOWN' | 'HOST_KEY_CHANGED' | 'AUTH_FAILED' | 'BAD_CREDENTIAL' | 'UNREACHABLE' | 'SESSION_CLOSED' | 'TIMEOUT' | 'CANCELLED';

/** An SSH failure with a stable code; the message says what happened and what to do. */
export class SshError extends Error {
  override name = 'SshError';
  constructor(
    readonly code: SshErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Read as well as the agent's own file, as ssh(1) does; never written. */
const GLOBAL_KNOWN_HOSTS = '/etc/ssh/ssh_known_hosts';

/**
 * How long the prompt must stay the last thing received before a command
 * counts as done: output that merely pauses on a line ending in "#" or ">"
 * is not taken for the prompt. Each command costs at least this much.
 */
export const SETTLE_MS = 40;

/** How long close() waits for the connection to be gone. */
const CLOSE_WAIT_MS = 2000;

/** Keepalives on pooled connections, so a device that vanished is noticed (interval x count). */
const KEEPALIVE_INTERVAL_MS = 15_000;
const KEEPALIVE_COUNT_MAX = 3;

/**
 * The pseudo-terminal requested in shell mode: wide, so devices do not wrap
 * long lines (they page by height; the pager is answered).
 */
const PTY = { term: 'vt100', cols: 511, rows: 24 };

/** Pager prompts of common CLIs: " --More-- ", "<--- More --->", "-- More --". */
const PAGER = /(--+ ?\(?more\b[^\n]*|<-+ ?more ?-+>)\s*$/i;

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]|\x1b[=>78DEHM]/g;

/** A terminal line as a person would see it: escapes, redraws after \r and backspaces applied. */
export function cleanLine(raw: string): string {
  let s = raw.replace(ANSI, '');
  if (s.endsWith('\r')) s = s.slice(0, -1);
  const cr = s.lastIndexOf('\r');
  if (cr >= 0) s = s.slice(cr + 1);
  if (s.includes('\b')) {
    const out: string[] = [];
    for (const ch of s) {
      if (ch === '\b') out.pop();
      else out.push(ch);
    }
    s = out.join('');
  }
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '');
}

export interface CommandResult {
  /** The command's output lines, cleaned, without the echo and the prompt. */
  lines: string[];
  /** exec mode: the exit status (0 in shell mode). */
  exitCode: number;
  /** The device closed the session while or right after running the command. */
  closed: boolean;
}

/** Called with each output line as it arrives (stderr only in exec mode). */
export type OnLine = (line: string, stream: 'stdout' | 'stderr') => void;

let connections = 0;

export class DeviceSession {
  /** Unique per agent process: which connection a step used (in the debug log). */
  readonly id = ++connections;
  private shell: ClientChannel | undefined;
  private decoder = new StringDecoder('utf8');
  /** Shell output received and not yet consumed by a command. */
  private pending = '';
  private wake: (() => void) | undefined;
  private isClosed = false;
  private shellExit: number | undefined;
  /** Resolves when the TCP connection is gone. */
  private readonly gone: Promise<void>;

  private constructor(
    private readonly ssh: NodeSSH,
    readonly address: DeviceAddress,
  ) {
    const conn = ssh.connection!;
    // node-ssh listens for errors only while connecting: without this a reset connection would crash the agent.
    conn.on('error', () => undefined);
    this.gone = new Promise((resolve) =>
      conn.once('close', () => {
        this.markClosed();
        resolve();
      }),
    );
  }

  get open(): boolean {
    return !this.isClosed;
  }

  /** Connects and authenticates, checking the host key first; rejects with an SshError. */
  static async connect(address: DeviceAddress, cred: Credential, policy: HostKeyPolicy, connectTimeoutMs: number): Promise<DeviceSession> {
    const { host, port, user } = address;
    const known = keysFor(`${readKnownHosts(policy.knownHosts)}\n${readKnownHosts(GLOBAL_KNOWN_HOSTS)}`, host, port);
    const serverHostKey = hostKeyAlgorithms(known);
    let check: HostKeyCheck | undefined;
    let presented: Buffer | undefined;
    const ssh = new NodeSSH();
    try {
      await ssh.connect({
        host,
        port,
        username: user,
        readyTimeout: connectTimeoutMs,
        keepaliveInterval: KEEPALIVE_INTERVAL_MS,
        keepaliveCountMax: KEEPALIVE_COUNT_MAX,
        ...(cred.kind === 'key' ? { privateKey: cred.privateKey, passphrase: cred.passphrase } : { password: cred.password, tryKeyboard: true }),
        ...(serverHostKey.length ? { algorithms: { serverHostKey } } : {}),
        hostVerifier: (key: Buffer) => {
          presented = key;
          check = checkHostKey(known, key);
          if (check.status === 'unknown' && policy.acceptNew) {
            addKnownHost(policy.knownHosts, host, port, key);
            check = { status: 'known' };
          }
          return check.status === 'known';
        },
      });
    } catch (err) {
      ssh.dispose();
      throw connectError(err, address, cred, policy, check, presented, connectTimeoutMs);
    }
    return new DeviceSession(ssh, address);
  }

  /** Runs one command in the session's shell (opened, and its first prompt awaited, on first use). */
  async shellCommand(command: string, prompt: Pattern, timeoutMs: number, signal: AbortSignal, onLine: OnLine): Promise<CommandResult> {
    if (this.isClosed) throw this.closedError();
    if (!this.shell) {
      await this.openShell(prompt, timeoutMs, signal);
    }
    this.shell!.write(`${command}\n`);
    let echoChecked = false;
    const lines: string[] = [];
    const emit = (raw: string) => {
      const line = cleanLine(raw);
      if (!echoChecked) {
        echoChecked = true;
        if (line.trim().endsWith(command.trim())) return;
      }
      lines.push(line);
      onLine(line, 'stdout');
    };
    const closed = await this.untilPrompt(prompt, timeoutMs, signal, emit, `"${command}"`);
    return { lines, exitCode: closed && this.shellExit ? this.shellExit : 0, closed };
  }

  /** Runs one command on its own exec channel; its exit status is the result's. */
  execCommand(command: string, timeoutMs: number, signal: AbortSignal, onLine: OnLine): Promise<CommandResult> {
    const conn = this.ssh.connection;
    if (!conn || this.isClosed) return Promise.reject(this.closedError());
    return new Promise((resolve, reject) => {
      conn.exec(command, (err, stream) => {
        if (err) return reject(new SshError('SESSION_CLOSED', `device ${this.address.label} refused to run "${command}": ${err.message}`, { cause: err }));
        const lines: string[] = [];
        const split = (which: 'stdout' | 'stderr') => {
          const dec = new StringDecoder('utf8');
          let rest = '';
          return {
            push: (d: Buffer) => {
              rest += dec.write(d);
              const parts = rest.split('\n');
              rest = parts.pop()!;
              for (const p of parts) {
                const line = cleanLine(p);
                if (which === 'stdout') lines.push(line);
                onLine(line, which);
              }
            },
            end: () => {
              rest += dec.end();
              if (rest) {
                const line = cleanLine(rest);
                if (which === 'stdout') lines.push(line);
                onLine(line, which);
              }
            },
          };
        };
        const out = split('stdout');
        const errOut = split('stderr');
        let code = 0;
        let failure: SshError | undefined;
        const stop = (e: SshError) => {
          failure ??= e;
          stream.close();
        };
        const timer = setTimeout(() => stop(new SshError('TIMEOUT', `command "${command}" did not finish within ${timeoutMs / 1000}s on device ${this.address.label}`)), timeoutMs);
        const onAbort = () => stop(new SshError('CANCELLED', 'cancelled'));
        signal.addEventListener('abort', onAbort, { once: true });
        stream.on('error', (e: Error) => stop(new SshError('SESSION_CLOSED', `device ${this.address.label}: ${e.message}`, { cause: e })));
        stream.on('data', (d: Buffer) => out.push(d));
        stream.stderr.on('data', (d: Buffer) => errOut.push(d));
        stream.on('exit', (c: number | null, sig?: string) => (code = c ?? (sig ? 255 : 0)));
        stream.on('close', () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          out.end();
          errOut.end();
          if (failure) reject(failure);
          else resolve({ lines, exitCode: code, closed: false });
        });
      });
    });
  }

  /**
   * Closes the connection. Resolves once it is gone (at most CLOSE_WAIT_MS),
   * so a device that counts sessions has seen this one end before the next.
   */
  close(): Promise<void> {
    this.markClosed();
    this.shell?.destroy();
    this.ssh.dispose();
    return Promise.race([this.gone, new Promise<void>((r) => setTimeout(r, CLOSE_WAIT_MS).unref())]);
  }

  private markClosed() {
    this.isClosed = true;
    this.wake?.();
  }

  private closedError(): SshError {
    return new SshError('SESSION_CLOSED', `device ${this.address.label} closed the SSH session`);
  }

  private async openShell(prompt: Pattern, timeoutMs: number, signal: AbortSignal) {
    try {
      this.shell = await this.ssh.requestShell(PTY);
    } catch (err) {
      throw new SshError('SESSION_CLOSED', `device ${this.address.label} refused an interactive shell: ${(err as Error).message}; if it runs commands directly, use mode: exec`, { cause: err });
    }
    this.shell.on('data', (d: Buffer) => {
      this.pending += this.decoder.write(d);
      this.wake?.();
    });
    this.shell.stderr.on('data', (d: Buffer) => {
      this.pending += d.toString('utf8');
      this.wake?.();
    });
    this.shell.on('exit', (code: number | null) => (this.shellExit = code ?? 0));
    // A channel error ends in 'close' (the session is then closed); unhandled, it would crash the agent.
    this.shell.on('error', () => undefined);
    this.shell.on('close', () => this.markClosed());
    // The banner and message of the day end at the first prompt.
    const closed = await this.untilPrompt(prompt, timeoutMs, signal, () => undefined, 'the first prompt');
    if (closed) throw new SshError('SESSION_CLOSED', `device ${this.address.label} closed the session before showing a prompt`);
  }

  /**
   * Consumes shell output up to the next prompt, passing each complete line
   * to `emit`. Resolves true when the session closed first (what came before
   * is emitted), false at the prompt.
   */
  private untilPrompt(prompt: Pattern, timeoutMs: number, signal: AbortSignal, emit: (raw: string) => void, what: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      let settle: NodeJS.Timeout | undefined;
      const done = (fn: () => void) => {
        clearTimeout(timer);
        clearTimeout(settle);
        signal.removeEventListener('abort', onAbort);
        this.wake = undefined;
        fn();
      };
      const timer = setTimeout(
        () =>
          done(() =>
            reject(
              new SshError(
                'TIMEOUT',
                `no prompt from device ${this.address.label} within ${timeoutMs / 1000}s after ${what}` +
                  (this.pending ? ` (last output: ${JSON.stringify(cleanLine(this.pending.slice(-80)))}; if that is the prompt, set ssh.prompt to match it)` : ''),
              ),
            ),
          ),
        timeoutMs,
      );
      const onAbort = () => done(() => reject(new SshError('CANCELLED', 'cancelled')));
      signal.addEventListener('abort', onAbort, { once: true });
      const check = () => {
        clearTimeout(settle);
        const nl = this.pending.lastIndexOf('\n');
        if (nl >= 0) {
          for (const raw of this.pending.slice(0, nl).split('\n')) emit(raw);
          this.pending = this.pending.slice(nl + 1);
        }
        if (this.isClosed) {
          if (this.pending) emit(this.pending);
          this.pending = '';
          return done(() => resolve(true));
        }
        if (PAGER.test(cleanLine(this.pending))) {
          this.pending = '';
          this.shell?.write(' ');
          return;
        }
        if (!prompt.test(cleanLine(this.pending))) return;
        const seen = this.pending;
        settle = setTimeout(() => {
          if (this.pending !== seen) return;
          this.pending = '';
          done(() => resolve(false));
        }, SETTLE_MS);
      };
      this.wake = check;
      check();
    });
  }
}

/** Turns an ssh2 connection failure into an SshError an operator can act on. */
function connectError(
  err: unknown,
  a: DeviceAddress,
  cred: Credential,
  policy: HostKeyPolicy,
  check: HostKeyCheck | undefined,
  presented: Buffer | undefined,
  connectTimeoutMs: number,
): SshError {
  const addr = `${a.host}:${a.port}`;
  const e = err as Error & { code?: string; level?: string };
  const entry = hostEntryName(a.host, a.port);
  if (check?.status === 'unknown' && presented) {
    return new SshError(
      'HOST_KEY_UNKNOWN',
      `the host key of device ${a.label} (${addr}) is not in ${policy.knownHosts} (it presented ${keyTypeOf(presented)} ${fingerprint(presented)}); ` +
        `check that fingerprint with the device's owner, then add it on this agent (ssh-keyscan -p ${a.port} ${a.host} >> ${policy.knownHosts}) ` +
        'or start the agent with --ssh-accept-new-host-keys; no credential was sent',
      { cause: err },
    );
  }
  if ((check?.status === 'changed' || check?.status === 'revoked') && presented) {
    return new SshError(
      'HOST_KEY_CHANGED',
      `the host key of device ${a.label} (${addr}) ${check.status === 'revoked' ? 'is marked @revoked' : 'has CHANGED'} in ${policy.knownHosts} ` +
        `(it presented ${keyTypeOf(presented)} ${fingerprint(presented)}); someone may be intercepting the connection, or the device was replaced; ` +
        `if it was replaced, remove the old key on this agent (ssh-keygen -R '${entry}' -f ${policy.knownHosts}) and add the new one; no credential was sent`,
      { cause: err },
    );
  }
  if (e.level === 'client-authentication') {
    const what = cred.kind === 'key' ? `the private key in ${cred.file}` : `the password in ${cred.file}`;
    return new SshError(
      'AUTH_FAILED',
      `device ${a.label} (${a.user}@${addr}) did not accept credential "${cred.name}" (${what}); check the user and that the ${cred.kind === 'key' ? "key's public half is authorized" : 'password is right'} on the device`,
      { cause: err },
    );
  }
  if (/private ?key|passphrase|Unsupported key format|Cannot parse/i.test(e.message ?? '')) {
    return new SshError(
      'BAD_CREDENTIAL',
      `cannot use credential "${cred.name}" (${cred.file}): ${e.message}${/passphrase/i.test(e.message) ? `; put the passphrase in ${cred.file}.passphrase` : ''}`,
      { cause: err },
    );
  }
  const why =
    e.code === 'ECONNREFUSED' ? 'the connection was refused (nothing listens on that port)'
    : e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN' ? 'the host name does not resolve'
    : e.code === 'EHOSTUNREACH' || e.code === 'ENETUNREACH' ? 'there is no route to it'
    : /timed out|ETIMEDOUT/i.test(`${e.message} ${e.code}`) ? `no SSH handshake within ${connectTimeoutMs / 1000}s`
    : e.message;
  return new SshError('UNREACHABLE', `cannot reach device ${a.label} at ${addr}: ${why}`, { cause: err });
}
