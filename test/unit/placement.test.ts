import { describe, expect, it } from 'vitest';
import { compile } from '../../common/workflow/compiler/compile.js';
import { place } from '../../common/workflow/placement/placement.js';
import { fleetAgent } from '../helpers/fleet-agent.js';

const agent = fleetAgent;

const plan = (source: string) => compile({ source, params: {} }).plan!;

describe('placement', () => {
  it('placement - picks a matching agent by labels', () => {
    const p = plan(`name: x\nsteps:\n  - { id: a, run: "true", target: { labels: { role: db } } }\n`);
    const res = place(p.steps, [agent('web-1', { role: 'web' }), agent('db-1', { role: 'db' })]);
    expect(res.agents).toEqual({ a: 'db-1' });
  });

  it('placement - keeps a chain on the agent of its needs', () => {
    const p = plan(`name: x\nsteps:\n  - { id: a, run: "true" }\n  - { id: b, run: "true", needs: [a] }\n  - { id: c, run: "true", needs: [b] }\n`);
    const res = place(p.steps, [agent('n1', {}), agent('n2', {})]);
    expect(new Set(Object.values(res.agents)).size).toBe(1);
  });

  it('placement - prefers the least-loaded connected agent', () => {
    const p = plan(`name: x\nsteps:\n  - { id: a, run: "true" }\n`);
    const res = place(p.steps, [
      agent('busy', {}, { runningSteps: 3 }),
      agent('idle', {}, { cpuPercent: 50 }),
      agent('gone', {}, { state: 'disconnected' }),
    ]);
    expect(res.agents.a).toBe('idle');
  });

  it('placement - reports a target no agent matches, listing the labels that exist', () => {
    const p = plan(`name: x\nsteps:\n  - { id: a, run: "true", target: { labels: { role: dbx } } }\n`);
    const res = place(p.steps, [agent('db-1', { role: 'db' })]);
    expect(res.problems[0].message).toBe('no agent matches role=dbx; labels in the fleet: role=db');
  });
});
