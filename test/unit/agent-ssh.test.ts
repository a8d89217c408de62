import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../agent/config.js';
import { ConfigError } from '../../common/errors.js';
import { CredentialError, mask, parseCredentialFlags, resolveCredential } from '../../agent/executor/ssh/credentials.js';
import { cleanLine } from '../../agent/executor/ssh/session.js';
import type { DevicePool } from '../../agent/executor/ssh/pool.js';
import { runSsh, type SshStepSpec } from '../../agent/executor/ssh/step.js';
import { DEFAULT_ERROR_PATTERN, DEFAULT_PROMPT } from '../../common/workflow/compiler/schema.js';

const dir = mkdtempSync(join(tmpdir(), 'drover-agent-ssh-'));
const KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n';

describe('agent - ssh credentials', () => {
  it('credentials - a key file is a key (passphrase from FILE.passphrase), anything else a one-line password', () => {
    writeFileSync(join(dir, 'key'), KEY);
    writeFileSync(join(dir, 'key.passphrase'), 's3cret-phrase\n');
    writeFileSync(join(dir, 'pw'), 'p4ssw0rd\n');
    const sources = { files: { k: join(dir, 'key'), p: join(dir, 'pw') }, dir };
    expect(resolveCredential('k', sources, 'proxy-1')).toEqual({
      name: 'k',
      file: join(dir, 'key'),
      kind: 'key',
      privateKey: KEY,
      passphrase: 's3cret-phrase',
      secrets: ['s3cret-phrase'],
    });
    expect(resolveCredential('p', sources, 'proxy-1')).toMatchObject({ kind: 'password', password: 'p4ssw0rd', secrets: ['p4ssw0rd'] });
  });

  it('credentials - a name without a flag is looked up in the credentials dir', () => {
    const credDir = join(dir, 'credentials');
    mkdirSync(credDir, { recursive: true });
    writeFileSync(join(credDir, 'core'), 'hunter22\n');
    expect(resolveCredential('core', { files: {}, dir: credDir }, 'proxy-1')).toMatchObject({ kind: 'password', file: join(credDir, 'core') });
  });

  it('credentials - an unknown name says how to give it to the agent', () => {
    const err = (() => {
      try {
        resolveCredential('nope', { files: {}, dir: '/nonexistent/creds' }, 'proxy-1');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(CredentialError);
    expect((err as Error).message).toBe(
      'credential "nope" is not known on agent proxy-1: start it with --credential nope=/path/to/key-or-password-file, or put the file at /nonexistent/creds/nope',
    );
  });

  it('credentials - a file of several lines that is no key is refused', () => {
    writeFileSync(join(dir, 'two-lines'), 'a\nb\n');
    expect(() => resolveCredential('x', { files: { x: join(dir, 'two-lines') }, dir }, 'proxy-1')).toThrow(
      `credential "x" (${join(dir, 'two-lines')}) is neither a private key nor a password file (one line): fix the file on agent proxy-1`,
    );
  });

  it('credentials - --credential values must be NAME=FILE with a plain name', () => {
    expect(parseCredentialFlags(['lab=/etc/k', 'b.2=rel/path'])).toEqual({ lab: '/etc/k', 'b.2': 'rel/path' });
    expect(() => parseCredentialFlags(['/etc/k'])).toThrow('--credential "/etc/k" is not NAME=FILE');
    expect(() => parseCredentialFlags(['../x=/etc/k'])).toThrow(CredentialError);
  });

  it('credentials - mask hides every occurrence of a secret, but not secrets too short to mean anything', () => {
    expect(mask('username admin secret hunter22 / hunter22', ['hunter22'])).toBe('username admin secret *** / ***');
    expect(mask('a b c', ['a'])).toBe('a b c');
  });
});

describe('agent - ssh terminal output', () => {
  it('ssh session - cleanLine applies escapes, carriage-return redraws and backspaces', () => {
    expect(cleanLine('\x1b[1mbold\x1b[0m text\r')).toBe('bold text');
    expect(cleanLine(' --More-- \r          \rEthernet2 is up')).toBe('Ethernet2 is up');
    expect(cleanLine(' --More-- \b\b\b\b\b\b\b\b\b\b          \b\b\b\b\b\b\b\b\b\bEthernet3 is up')).toBe('Ethernet3 is up');
    expect(cleanLine('tab\tkept\x07')).toBe('tab\tkept');
  });
});

describe('agent - ssh step patterns', () => {
  const spec = (extra: Partial<SshStepSpec>): SshStepSpec => ({
    device: 'switch1',
    host: 'switch1.lab.example',
    port: 22,
    user: 'admin',
    credential: 'lab',
    commands: [{ command: 'show version', name: '', timeoutMs: 0 }],
    errorPattern: DEFAULT_ERROR_PATTERN,
    mode: 'shell',
    prompt: DEFAULT_PROMPT,
    commandTimeoutMs: 1000,
    maxSessions: 1,
    ...extra,
  });
  /** A pool the step must not reach: a refused pattern fails it before connecting. */
  const pool = {
    acquire: () => {
      throw new Error('connected despite a refused pattern');
    },
  } as unknown as DevicePool;
  const run = (s: SshStepSpec) => runSsh(s, pool, 'run-1', { timeoutMs: 0, log: () => undefined }).result;

  it('ssh step - a prompt or errorPattern RE2 refuses (a plan from an older control plane) fails the step before connecting, with the reason', async () => {
    const lookahead = await run(spec({ prompt: '^\\S+(?=#)#$' }));
    expect(lookahead.exitCode).toBe(1);
    expect(lookahead.spawnError).toContain('ssh.prompt /^\\S+(?=#)#$/ cannot be used: it uses lookahead (?=…) or (?!…), which RE2 does not support');
    const backref = await run(spec({ errorPattern: '(%)\\1' }));
    expect(backref.exitCode).toBe(1);
    expect(backref.spawnError).toContain('ssh.errorPattern /(%)\\1/ cannot be used: it uses a backreference (\\1, \\k<name>), which RE2 does not support');
  });
});

describe('agent - ssh options', () => {
  it('agent config - credentials, known_hosts and session options resolve with defaults under the state dir', () => {
    const cfg = resolveConfig({ name: 'p1', stateDir: '/var/lib/drover-agent', credential: ['lab=keys/lab'] }, {});
    expect(cfg.credentials).toEqual({ lab: join(process.cwd(), 'keys/lab') });
    expect(cfg.credentialsDir).toBe('/var/lib/drover-agent/credentials');
    expect(cfg.sshKnownHosts).toBe('/var/lib/drover-agent/known_hosts');
    expect(cfg).toMatchObject({ sshAcceptNewHostKeys: false, sshConnectTimeoutMs: 15_000, sshIdleMs: 60_000 });
  });

  it('agent config - a bad --credential or --ssh-idle-ms is a ConfigError', () => {
    expect(() => resolveConfig({ name: 'p1', credential: ['nofile'] }, {})).toThrow(ConfigError);
    expect(() => resolveConfig({ name: 'p1', sshIdleMs: 0 }, {})).toThrow('--ssh-idle-ms must be a whole number of milliseconds above 0, got 0');
  });
});
