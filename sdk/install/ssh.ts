/**
 * The installer's SSH session (node-ssh over ssh2): connects with host-key
 * checking against known_hosts, runs commands, streams files, and turns
 * connection failures into InstallErrors that say what went wrong and how to
 * fix it.
 */
import { createReadStream, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { Transform } from 'node:stream';
import { NodeSSH } from 'node-ssh';
import { addKnownHost, checkHostKey, fingerprint, hostKeyAlgorithms, keysFor, keyTypeOf, readKnownHosts, type HostKeyCheck } from '../../common/known-hosts.js';
import { InstallError } from '../errors.js';
import { formatTarget, type SshTarget } from './target.js';

/** The result of one remote command. */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** What the installer needs of a host; the unit tests give a fake one. */
export interface RemoteHost {
  /** Runs `command` (an sh command line), with `stdin` piped in when given. */
  exec(command: string, stdin?: string): Promise<ExecResult>;
  /** Runs `command` with a local file as stdin, reporting bytes sent. */
  execWithFile(command: string, file: string, onBytes?: (sent: number) => void): Promise<ExecResult>;
  close(): void;
}

/** How to reach and trust a host. */
export interface ConnectOptions {
  target: SshTarget;
  /** Private key file; without it, ssh-agent (SSH_AUTH_SOCK) or ~/.ssh/id_ed25519, id_ecdsa, id_rsa. */
  identity?: string;
  /** Checked and, with acceptNewHostKey, appended to. Default ~/.ssh/known_hosts. */
  knownHosts: string;
  /** Add an unknown host's key to knownHosts (a changed key is always refused). */
  acceptNewHostKey: boolean;
  /** Gives up on a host that does not finish the SSH handshake in this time. */
  connectTimeoutMs: number;
}

/** Read as well as the user's file, as ssh(1) does; never written. */
const GLOBAL_KNOWN_HOSTS = '/etc/ssh/ssh_known_hosts';

const DEFAULT_IDENTITIES = ['id_ed25519', 'id_ecdsa', 'id_rsa'];

function loadIdentity(opts: ConnectOptions): { privateKey?: Buffer; agent?: string; identity?: string } {
  const name = formatTarget(opts.target);
  if (opts.identity) {
    try {
      return { privateKey: readFileSync(opts.identity), identity: opts.identity };
    } catch (err) {
      throw new InstallError(`${name}: cannot read the identity file ${opts.identity}: ${(err as Error).message}`, {
        reason: 'BAD_IDENTITY',
        hint: 'pass --identity with the path of a private key (for example ~/.ssh/id_ed25519)',
        cause: err,
      });
    }
  }
  if (process.env.SSH_AUTH_SOCK) return { agent: process.env.SSH_AUTH_SOCK };
  for (const file of DEFAULT_IDENTITIES) {
    const path = `${homedir()}/.ssh/${file}`;
    try {
      return { privateKey: readFileSync(path), identity: path };
    } catch {
      // try the next default
    }
  }
  throw new InstallError(`${name}: no SSH identity: --identity was not given, ssh-agent is not running and ~/.ssh has no id_ed25519, id_ecdsa or id_rsa`, {
    reason: 'BAD_IDENTITY',
    hint: 'pass --identity KEY (a private key whose public half is in the host\'s authorized_keys)',
  });
}

/** Turns an ssh2 connection error into the InstallError an operator can act on. */
function connectError(err: unknown, opts: ConnectOptions, identity: string | undefined, hostKey: HostKeyCheck | undefined, presented?: Buffer): InstallError {
  const name = formatTarget(opts.target);
  const addr = `${opts.target.host}:${opts.target.port}`;
  const e = err as Error & { code?: string; level?: string };
  if (hostKey?.status === 'unknown') {
    return new InstallError(
      `${name}: the host key of ${addr} is not in ${opts.knownHosts} (${keyTypeOf(presented!)} ${fingerprint(presented!)}); nothing was changed`,
      {
        reason: 'HOST_KEY_UNKNOWN',
        hint: `check that fingerprint with the host's owner (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on the host), then run again with --accept-new-host-key`,
        cause: err,
      },
    );
  }
  if (hostKey?.status === 'changed' || hostKey?.status === 'revoked') {
    return new InstallError(
      `${name}: the host key of ${addr} ${hostKey.status === 'revoked' ? 'is marked @revoked' : 'has CHANGED'} in ${opts.knownHosts} ` +
        `(it presented ${keyTypeOf(presented!)} ${fingerprint(presented!)}); someone may be intercepting the connection, or the host was reinstalled; nothing was changed`,
      {
        reason: 'HOST_KEY_CHANGED',
        hint: `if the host really was reinstalled, remove the old key with ssh-keygen -R ${opts.target.port === 22 ? opts.target.host : `'[${opts.target.host}]:${opts.target.port}'`} -f ${opts.knownHosts} and run again with --accept-new-host-key`,
        cause: err,
      },
    );
  }
  if (e.level === 'client-authentication') {
    return new InstallError(`${name}: the host did not accept ${identity ? `the key ${identity}` : 'any key from ssh-agent'} for user ${opts.target.user}; nothing was changed`, {
      reason: 'AUTH_FAILED',
      hint: `add the public key${identity ? ` (${identity}.pub)` : ''} to ~${opts.target.user}/.ssh/authorized_keys on the host, or pass the right --identity and user`,
      cause: err,
    });
  }
  if (/private ?key|passphrase|Unsupported key format/i.test(e.message ?? '')) {
    return new InstallError(`${name}: cannot use the identity ${identity}: ${e.message}`, {
      reason: 'BAD_IDENTITY',
      hint: 'use an unencrypted key, or load it into ssh-agent (ssh-add) and leave out --identity',
      cause: err,
    });
  }
  const why =
    e.code === 'ECONNREFUSED' ? 'the connection was refused (nothing listens on that port)'
    : e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN' ? 'the host name does not resolve'
    : e.code === 'EHOSTUNREACH' || e.code === 'ENETUNREACH' ? 'there is no route to the host'
    : /timed out|ETIMEDOUT/i.test(`${e.message} ${e.code}`) ? `no SSH handshake within ${opts.connectTimeoutMs / 1000} s`
    : e.message;
  return new InstallError(`${name}: cannot reach ${addr}: ${why}; nothing was changed`, {
    reason: 'UNREACHABLE',
    hint: 'check the address and port, that sshd runs on the host and that no firewall is in the way',
    cause: err,
  });
}

/** An open SSH session to one host. */
export class SshHost implements RemoteHost {
  private constructor(private readonly ssh: NodeSSH) {}

  /** Connects and authenticates, checking the host key; rejects with an InstallError. */
  static async connect(opts: ConnectOptions): Promise<SshHost> {
    const auth = loadIdentity(opts);
    const knownText = `${readKnownHosts(opts.knownHosts)}\n${readKnownHosts(GLOBAL_KNOWN_HOSTS)}`;
    const known = keysFor(knownText, opts.target.host, opts.target.port);
    let check: HostKeyCheck | undefined;
    let presented: Buffer | undefined;
    const serverHostKey = hostKeyAlgorithms(known);
    const ssh = new NodeSSH();
    try {
      await ssh.connect({
        host: opts.target.host,
        port: opts.target.port,
        username: opts.target.user,
        ...(auth.privateKey ? { privateKey: auth.privateKey.toString('utf8') } : {}),
        ...(auth.agent ? { agent: auth.agent } : {}),
        readyTimeout: opts.connectTimeoutMs,
        ...(serverHostKey.length ? { algorithms: { serverHostKey } } : {}),
        hostVerifier: (key: Buffer) => {
          presented = key;
          check = checkHostKey(known, key);
          if (check.status === 'known') return true;
          if (check.status === 'unknown' && opts.acceptNewHostKey) {
            addKnownHost(opts.knownHosts, opts.target.host, opts.target.port, key);
            check = { status: 'known' };
            return true;
          }
          return false;
        },
      });
    } catch (err) {
      ssh.dispose();
      throw connectError(err, opts, auth.identity, check?.status === 'known' ? undefined : check, presented);
    }
    return new SshHost(ssh);
  }

  async exec(command: string, stdin?: string): Promise<ExecResult> {
    const res = await this.ssh.execCommand(command, { ...(stdin !== undefined ? { stdin } : {}), noTrim: true });
    return { code: res.code ?? -1, stdout: res.stdout, stderr: res.stderr };
  }

  async execWithFile(command: string, file: string, onBytes?: (sent: number) => void): Promise<ExecResult> {
    let sent = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        sent += chunk.length;
        onBytes?.(sent);
        done(null, chunk);
      },
    });
    const res = await this.ssh.execCommand(command, { stdin: createReadStream(file).pipe(counter), noTrim: true });
    return { code: res.code ?? -1, stdout: res.stdout, stderr: res.stderr };
  }

  close(): void {
    this.ssh.dispose();
  }
}
