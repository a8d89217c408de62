import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../common/errors.js';
import { resolveConfig } from '../../control-plane/config.js';
import { UnavailableError } from '../../control-plane/errors.js';
import { describeNatsError, LineJoiner, splitLines } from '../../control-plane/store/jetstream-store.js';
import { JetStreamApiError } from '@nats-io/jetstream';

describe('jetstream store - pure parts', () => {
  it('jetstream store - a batch is cut at line ends into messages that fit max_payload, in order', () => {
    const lines = ['["agent",{"name":"a"}]', '["agent",{"name":"b"}]', '["agent",{"name":"c"}]'];
    const text = `${lines.join('\n')}\n`;
    expect(splitLines(text, 1000)).toEqual([text]);
    const pieces = splitLines(text, 50);
    expect(pieces.join('')).toBe(text);
    expect(pieces.every((p) => Buffer.byteLength(p) <= 50 && p.endsWith('\n'))).toBe(true);
    expect(pieces.length).toBe(2);
    expect(splitLines('', 50)).toEqual([]);
  });

  it('jetstream store - a change bigger than max_payload goes in parts, one message each, and is joined again on replay', () => {
    const big = JSON.stringify(['run', { id: 'r-1', steps: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`s${i}`, { log: 'é😀x'.repeat(i) }])) }]);
    const small = '["agent",{"name":"a"}]';
    const pieces = splitLines(`${small}\n${big}\n${small}\n`, 200);
    expect(pieces.every((p) => Buffer.byteLength(p) <= 200 && p.endsWith('\n'))).toBe(true);
    expect(pieces.length).toBeGreaterThan(10);
    expect(pieces.slice(1, -1).every((p) => /^[+=]/.test(p) && p.split('\n').length === 2)).toBe(true);
    const joiner = new LineJoiner();
    const lines = pieces.flatMap((p) => p.split('\n')).map((l) => l && joiner.feed(l)).filter(Boolean);
    expect(lines).toEqual([small, big, small]);
    // Parts a dead writer never ended are dropped at the next whole line.
    const torn = new LineJoiner();
    expect([pieces[1], pieces[2], `${small}\n`].flatMap((p) => p.split('\n')).map((l) => l && torn.feed(l)).filter(Boolean)).toEqual([small]);
  });

  it('jetstream store - a wrong last sequence is FENCED, a request nobody answered is NO_RESPONDERS, other JetStream errors keep their code', () => {
    const fenced = describeNatsError(new JetStreamApiError({ code: 400, err_code: 10071, description: 'wrong last sequence: 7' }));
    expect(fenced.code).toBe('FENCED');
    expect(fenced.message).toMatch(/^another writer appended to DROVER_STATE \(wrong last sequence: 7\): only one control plane may write its state; stop the other one$/);
    expect(describeNatsError(new JetStreamApiError({ code: 503, err_code: 10008, description: 'JetStream system temporarily unavailable' })).code).toBe('JS_10008');
    const timeout = new Error('timeout');
    timeout.name = 'TimeoutError';
    expect(describeNatsError(timeout)).toEqual({ code: 'TIMEOUT', message: 'timeout' });
    const nobody = new Error('jetstream is not enabled', { cause: { isNoResponders: () => true } });
    expect(describeNatsError(nobody)).toEqual({
      code: 'NO_RESPONDERS',
      message: 'no JetStream server answered on drover.v1.state.changes: the stream DROVER_STATE has no leader (is a majority of the NATS cluster up?) or JetStream is not enabled for the account',
    });
  });

  it('jetstream store - UNAVAILABLE names NATS JetStream and how to fix it', () => {
    const e = new UnavailableError({ dir: '', where: 'NATS JetStream (stream DROVER_STATE)', fix: 'bring back a majority', code: 'TIMEOUT', message: 'timeout' }, 'no run was started');
    expect(e.message).toBe('the control plane cannot write its state to NATS JetStream (stream DROVER_STATE) (TIMEOUT: timeout); no run was started');
    expect(e.hint).toBe('bring back a majority; the control plane retries by itself and takes new runs again once a write succeeds');
    const disk = new UnavailableError({ dir: '/d', code: 'ENOSPC', message: 'full' }, 'no run was started');
    expect(disk.message).toBe('the control plane cannot write its data dir /d (ENOSPC: full); no run was started');
  });

  it('jetstream store - server config: --store is lowdb or jetstream, jetstream needs --nats, replicas 1 to 5', () => {
    expect(resolveConfig({}, {})).toMatchObject({ store: 'lowdb', storeReplicas: 3 });
    expect(resolveConfig({ store: 'jetstream', nats: 'nats://a:4222,nats://b:4222', storeReplicas: 1 } as never, {})).toMatchObject({ store: 'jetstream', storeReplicas: 1 });
    expect(() => resolveConfig({ store: 'jetstream' } as never, {})).toThrow(ConfigError);
    expect(() => resolveConfig({ store: 'jetstream' } as never, {})).toThrow(/^--store jetstream keeps the state on NATS JetStream: give the servers with --nats/);
    expect(() => resolveConfig({ store: 'etcd' } as never, {})).toThrow(/^--store "etcd" is not lowdb \(the data dir, the default\) or jetstream/);
    expect(() => resolveConfig({ store: 'jetstream', nats: 'nats://a:4222', storeReplicas: 7 } as never, {})).toThrow(/^--store-replicas "7" must be 1 to 5/);
  });
});
