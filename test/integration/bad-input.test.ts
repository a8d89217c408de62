import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, startAgent, startServer, tempDir, waitFor, type ServerProc } from '../helpers/cluster.js';

let server: ServerProc;
const dir = tempDir('drover-bad-');

beforeAll(async () => {
  server = await startServer();
  startAgent(server, 'web-1', { role: 'web' });
  await waitFor(async () => (await cli(['fleet', '-o', 'json', '--server', server.address], server.env)).stdout.includes('"connected"'), 20_000, () => 'agent');
});

const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

const stateFile = () => readFileSync(join(server.dataDir, 'state.json'), 'utf8');
const runsOf = (state: string) => Object.keys((JSON.parse(state) as { runs: object }).runs);

describe('bad input - one clear message, non-zero exit, stored state unchanged', () => {
  const cases: [string, () => string[], RegExp][] = [
    [
      'unknown label selector',
      () => ['run', file('nolabel.yaml', 'name: x\nsteps:\n  - { id: a, run: "true", target: { labels: { role: nope } } }\n')],
      /no agent matches role=nope; labels in the fleet: role=web/,
    ],
    ['missing file', () => ['run', join(dir, 'does-not-exist.yaml')], /does-not-exist\.yaml/],
    ['invalid YAML', () => ['run', file('broken.yaml', 'name: x\nsteps: [ { id: a, run: x }\n')], /invalid YAML/],
    [
      'cycle',
      () => ['run', file('cycle.yaml', 'name: x\nsteps:\n  - { id: a, run: "true", needs: [b] }\n  - { id: b, run: "true", needs: [a] }\n')],
      /dependency cycle: a -> b -> a/,
    ],
    [
      'duplicate step id',
      () => ['run', file('dup.yaml', 'name: x\nsteps:\n  - { id: a, run: "true" }\n  - { id: a, run: "true" }\n')],
      /duplicate step id "a"/,
    ],
    ['unknown param', () => ['run', file('p.yaml', 'name: x\nsteps:\n  - { id: a, run: "true" }\n'), '-p', 'colour=red'], /unknown param "colour"/],
  ];
  for (const [name, args, message] of cases) {
    it(`bad input - ${name}`, async () => {
      const before = stateFile();
      const res = await cli([...args(), '--server', server.address], server.env);
      expect(res.code).not.toBe(0);
      expect(res.stderr).toMatch(message);
      expect(res.stdout).toBe('');
      await new Promise((r) => setTimeout(r, 50));
      expect(runsOf(stateFile())).toEqual(runsOf(before));
    });
  }

  it('bad input - an unreachable server is named, with how to start one', async () => {
    const res = await cli(['fleet', '--server', '127.0.0.1:1']);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/127\.0\.0\.1:1/);
    expect(res.stderr).toMatch(/drover (server|dev)/);
  });

  it('bad input - a status for an unknown run says how to list runs', async () => {
    const res = await cli(['status', 'r-nope', '--server', server.address], server.env);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/no run with id "r-nope"/);
    expect(res.stderr).toMatch(/drover runs/);
  });
});
