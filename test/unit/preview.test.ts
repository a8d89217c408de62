import { describe, expect, it } from 'vitest';
import { compile } from '../../common/workflow/compiler/compile.js';
import type { FleetDevice } from '../../common/workflow/model/target.js';
import { place } from '../../common/workflow/placement/placement.js';
import { previewWaves } from '../../common/workflow/placement/preview.js';
import { fleetAgent } from '../helpers/fleet-agent.js';

const agent = fleetAgent;

const fleet = [
  agent('web-1', { role: 'web' }),
  agent('web-2', { role: 'web' }, { state: 'disconnected' }),
  agent('db-1', { role: 'db' }, { draining: true }),
  agent('px-1', { proxy: 'lab' }),
];
const devices: FleetDevice[] = [{ name: 'sw-1', host: '10.0.0.1', port: 22, user: 'admin', credential: 'k', network: 'lab', labels: { kind: 'switch' }, maxSessions: 1 }];

const preview = (steps: string, extra = '') => {
  const res = compile({ source: `name: x\nsteps:\n${steps}${extra}`, params: {}, fleet, devices });
  expect(res.problems.filter((p) => p.severity === 'error')).toEqual([]);
  return previewWaves(res.plan!, place(res.plan!.steps, fleet), fleet);
};

describe('plan preview', () => {
  const waveCases: [string, string, string, string[][]][] = [
    ['a chain takes one wave per step', '  - { id: a, run: "true" }\n  - { id: b, run: "true", needs: [a] }\n  - { id: c, run: "true", needs: [b] }\n', '', [['a'], ['b'], ['c']]],
    [
      'a diamond joins one wave after its deepest need',
      '  - { id: a, run: "true" }\n  - { id: b, run: "true", needs: [a] }\n  - { id: c, run: "true", needs: [b] }\n  - { id: d, run: "true", needs: [a] }\n  - { id: e, run: "true", needs: [c, d] }\n',
      '',
      [['a'], ['b', 'd'], ['c'], ['e']],
    ],
    [
      'a fan-out and a forEach count once',
      '  - { id: fan, run: "true", target: { labels: { role: web }, strategy: all } }\n  - { id: each, run: "true", forEach: "${{ [1, 2, 3] }}", needs: [fan] }\n  - { id: after, run: "true", needs: [each] }\n',
      '',
      [['fan'], ['each'], ['after']],
    ],
    [
      'a wave keeps declared order, whatever the order of needs and groups',
      '  - { id: fan, run: "true", target: { labels: { role: web }, strategy: all } }\n  - { id: late, run: "true", needs: [z] }\n  - { id: z, run: "true" }\n  - { id: m, run: "true" }\n  - { id: a, run: "true", needs: [m] }\n',
      '',
      [['fan', 'z', 'm'], ['late', 'a']],
    ],
    ['finally steps come after every other step', '  - { id: a, run: "true" }\n  - { id: b, run: "true", needs: [a] }\n', 'finally:\n  - { id: f, run: "true" }\n  - { id: g, run: "true", needs: [f] }\n', [['a'], ['b'], ['f'], ['g']]],
  ];
  for (const [name, steps, extra, want] of waveCases) {
    it(`plan preview - ${name}`, () => {
      const waves = preview(steps, extra);
      expect(waves.map((w) => w.index)).toEqual(want.map((_, i) => i));
      expect(waves.map((w) => w.steps.map((s) => s.id))).toEqual(want);
    });
  }

  it('plan preview - a fan-out lists its instances and no placed agent; finally steps show no needs', () => {
    const waves = preview('  - { id: fan, run: "true", target: { labels: { role: web }, strategy: all, maxParallel: 1 } }\n', 'finally:\n  - { id: f, run: "true" }\n');
    expect(waves[0].steps[0]).toMatchObject({ id: 'fan', instances: ['fan[web-1]', 'fan[web-2]'], agent: '', strategy: 'all', maxParallel: 1 });
    expect(waves[1].steps[0]).toMatchObject({ id: 'f', needs: [], isFinally: true });
  });

  const matchCases: [string, string, { target: string; matches: string[]; agent: string }][] = [
    ['labels match connected, disconnected and draining agents', '  - { id: s, run: "true", target: { labels: { role: web } } }\n', { target: 'role=web', matches: ['web-1:connected', 'web-2:disconnected'], agent: 'web-1' }],
    ['a draining match is listed but not placed on', '  - { id: s, run: "true", target: { labels: { role: db } } }\n', { target: 'role=db', matches: ['db-1:connected:draining'], agent: '' }],
    ['no selector matches every agent', '  - { id: s, run: "true" }\n', { target: '(any agent)', matches: ['web-1:connected', 'web-2:disconnected', 'db-1:connected:draining', 'px-1:connected'], agent: 'px-1' }],
    ['an ssh step matches the proxies for its network', '  - { id: s, ssh: { device: sw-1, commands: ["show ver"] } }\n', { target: 'device=sw-1', matches: ['px-1:connected'], agent: 'px-1' }],
    ['an ssh fan-out names the devices it selects', '  - { id: s, ssh: { commands: ["show ver"] }, target: { labels: { kind: switch }, strategy: all } }\n', { target: 'devices kind=switch', matches: ['px-1:connected'], agent: '' }],
  ];
  for (const [name, steps, want] of matchCases) {
    it(`plan preview - ${name}`, () => {
      const [step] = preview(steps)[0].steps;
      expect({ target: step.target, matches: step.matches.map((m) => [m.name, m.state, ...(m.draining ? ['draining'] : [])].join(':')), agent: step.agent }).toEqual(want);
    });
  }
});
