import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveConfig as resolveAgentConfig } from '../../agent/config.js';
import { ConfigError } from '../../common/errors.js';
import { NATS_ENV, NATS_OPTION_FLAGS, NATS_OPTION_HELP, natsConnectionOptions, resolveNatsOptions, type NatsOptionInput } from '../../common/nats-options.js';
import { resolveConfig as resolveServerConfig } from '../../control-plane/config.js';

const dir = mkdtempSync(join(tmpdir(), 'drover-nats-opts-'));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

function refusal(flags: NatsOptionInput, env: NodeJS.ProcessEnv = {}): Error {
  try {
    resolveNatsOptions({}, flags, env);
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a refusal');
}

describe('nats options', () => {
  it('nats options - nothing set means no NATS link', () => {
    expect(resolveNatsOptions({}, {}, {})).toBeUndefined();
  });

  it('nats options - file < environment < flags, several servers comma-separated', () => {
    const o = resolveNatsOptions({ nats: 'nats://file:4222', natsToken: 'from-file' }, { natsToken: 'from-flag' }, { DROVER_NATS: 'nats://a:4222, tls://b:4223' });
    expect(o).toMatchObject({ servers: ['nats://a:4222', 'tls://b:4223'], token: 'from-flag', user: '' });
  });

  const cases: [string, NatsOptionInput, RegExp][] = [
    ['an option without --nats', { natsUser: 'u', natsPass: 'p' }, /^--nats-user, --nats-pass need --nats nats:\/\/HOST:PORT \(or DROVER_NATS\)$/],
    ['a URL that is not nats:// or tls://', { nats: 'http://h:4222' }, /^--nats "http:\/\/h:4222" is not a NATS server URL: use nats:\/\/HOST:PORT/],
    ['a bare host:port', { nats: '127.0.0.1:4222' }, /is not a NATS server URL/],
    ['credentials in the URL', { nats: 'nats://u:secret@h:4222' }, /^--nats "nats:\/\/h:4222": put credentials in --nats-user\/--nats-pass or --nats-token, not in the URL/],
    ['two authentication methods', { nats: 'nats://h', natsToken: 't', natsUser: 'u', natsPass: 'p' }, /^choose one NATS authentication, not --nats-user\/--nats-pass and --nats-token$/],
    ['a user without a password', { nats: 'nats://h', natsUser: 'u' }, /^--nats-user needs --nats-pass \(or DROVER_NATS_PASS\)$/],
    ['a TLS certificate without its key', { nats: 'tls://h', natsTlsCert: '/etc/hosts' }, /^--nats-tls-cert needs --nats-tls-key/],
    ['an unreadable creds file', { nats: 'nats://h', natsCreds: '/nonexistent/x.creds' }, /^--nats-creds \/nonexistent\/x\.creds: cannot read the file \(ENOENT\); give the path of a readable file$/],
  ];
  for (const [name, flags, message] of cases) {
    it(`nats options - refuses ${name}`, () => {
      const err = refusal(flags);
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.message).toMatch(message);
    });
  }

  it('nats options - --help lists every option after --nats, in order, each with its environment variable', () => {
    const expected = Object.entries(NATS_ENV).filter(([, key]) => key !== 'nats').map(([env, key]) => [NATS_OPTION_FLAGS[key], env]);
    expect(NATS_OPTION_HELP.map(([flags, text]) => [flags.split(' ')[0], /\(env (\w+)\)$/.exec(text)?.[1]])).toEqual(expected);
  });

  it('nats options - connection options carry auth, TLS for tls:// URLs, and reconnect forever', () => {
    const base = { servers: ['tls://h:4222'], user: '', pass: '', token: '', credsFile: '', nkeySeedFile: '', tlsCa: '/ca.pem', tlsCert: '', tlsKey: '' };
    const o = natsConnectionOptions({ ...base, user: 'u', pass: 'p' }, 'drover-agent x');
    expect(o).toMatchObject({ servers: ['tls://h:4222'], name: 'drover-agent x', user: 'u', pass: 'p', tls: { caFile: '/ca.pem' }, maxReconnectAttempts: -1 });
    expect(natsConnectionOptions({ ...base, servers: ['nats://h'], tlsCa: '' }, 'n').tls).toBeUndefined();
    const seed = file('user.nk', 'SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTC4\n');
    expect(typeof natsConnectionOptions({ ...base, nkeySeedFile: seed }, 'n').authenticator).toBe('function');
  });
});

describe('nats options - in the agent and server configs', () => {
  it('nats options - the agent links over NATS with --nats; --server beside it is where it enrolls', () => {
    const cfg = resolveAgentConfig({ nats: 'nats://h:4222', name: 'web-1' }, {});
    expect(cfg.nats?.servers).toEqual(['nats://h:4222']);
    expect(cfg.server).toBe('');
    const both = resolveAgentConfig({ nats: 'nats://h:4222', server: 'cp:7400', name: 'web-1' }, {});
    expect(both.nats?.servers).toEqual(['nats://h:4222']);
    expect(both.server).toBe('cp:7400');
    expect(() => resolveAgentConfig({ nats: 'nats://h:4222', server: 'cp', name: 'web-1' }, {})).toThrow(ConfigError);
  });

  it('nats options - a flag beats the environment when choosing the agent link', () => {
    expect(resolveAgentConfig({ nats: 'nats://h:4222', name: 'a' }, { DROVER_SERVER: 'cp:7400' }).nats?.servers).toEqual(['nats://h:4222']);
    const grpcCfg = resolveAgentConfig({ server: 'cp:7400', name: 'a' }, { DROVER_NATS: 'nats://h:4222' });
    expect(grpcCfg.nats).toBeUndefined();
    expect(grpcCfg.server).toBe('cp:7400');
  });

  it('nats options - an agent name that cannot be a subject token is refused with --nats', () => {
    expect(() => resolveAgentConfig({ nats: 'nats://h', name: 'web.' }, {})).toThrow(/^--name "web\." cannot be used with --nats: a NATS subject token cannot be empty/);
  });

  it('nats options - the server keeps gRPC and adds NATS; bad NATS options are a ConfigError', () => {
    const cfg = resolveServerConfig({ nats: 'nats://h:4222', natsToken: 't' }, {});
    expect(cfg.listen).toBe('127.0.0.1:7400');
    expect(cfg.nats).toMatchObject({ servers: ['nats://h:4222'], token: 't' });
    expect(resolveServerConfig({}, {}).nats).toBeUndefined();
    expect(() => resolveServerConfig({ natsCreds: '/x' }, {})).toThrow(ConfigError);
    expect(() => resolveServerConfig({ natsCreds: '/x' }, {})).toThrow(/^--nats-creds needs --nats nats:\/\/HOST:PORT \(or DROVER_NATS\)$/);
  });
});
