/** The pure parts of workflows as code: the step-by-step diff, --local's retargeting, saved fleet files, validate with a fleet. */
import { describe, expect, it } from 'vitest';
import { compile } from '../../common/workflow/compiler/compile.js';
import { retarget } from '../../sdk/cli/local/retarget.js';
import { diffText } from '../../sdk/cli/render/diff.js';
import { diffWorkflows, InvalidInputError, parseFleetSnapshot, parseWorkflowText } from '../../sdk/index.js';
import { fleetAgent } from '../helpers/fleet-agent.js';

const doc = (text: string) => parseWorkflowText(text, 'test.yaml');

describe('workflow diff', () => {
  const before = doc('name: w\nenv: { A: "1" }\nsteps:\n  - id: a\n    run: echo a\n    retry: { attempts: 3, backoff: fixed }\n  - id: b\n    needs: [a]\n    run: echo b\nfinally:\n  - id: f\n    run: echo f\n');

  it('diff - equal content is equal whatever the comments, key order and layout', () => {
    const same = doc('# hi\nsteps:\n  - run: echo a\n    id: a\n    retry: {backoff: fixed, attempts: 3}\n  - {id: b, needs: [a], run: echo b}\nname: w\nenv: {A: "1"}\nfinally: [{id: f, run: echo f}]\n');
    expect(diffWorkflows(before, same, 2)).toEqual({ workflow: 'w', version: 2, equal: true, fields: [], steps: [] });
    expect(diffText(diffWorkflows(before, same, 2), 'w.yaml')).toBe('w.yaml: no changes against w@2\n');
  });

  it('diff - fields of the workflow and of each step: nested mappings field by field, lists whole, steps moved between sections', () => {
    const after = doc('name: w\nsteps:\n  - id: a\n    run: echo a\n    retry: { attempts: 5 }\n  - id: c\n    run: echo c\nfinally:\n  - id: f\n    run: echo f\n  - id: b\n    needs: [a, c]\n    run: echo b\n');
    const d = diffWorkflows(before, after, 1);
    expect(d.equal).toBe(false);
    expect(d.fields).toEqual([{ path: 'env.A', before: '1' }]);
    expect(d.steps).toEqual([
      { id: 'a', section: 'steps', change: 'changed', fields: [{ path: 'retry.attempts', before: 3, after: 5 }, { path: 'retry.backoff', before: 'fixed' }] },
      { id: 'c', section: 'steps', change: 'added', fields: [{ path: 'id', after: 'c' }, { path: 'run', after: 'echo c' }] },
      { id: 'b', section: 'finally', change: 'changed', fields: [{ path: '(section)', before: 'steps', after: 'finally' }, { path: 'needs', before: ['a'], after: ['a', 'c'] }] },
    ]);
  });

  it('diff - nothing registered: every field and step is added', () => {
    const d = diffWorkflows(undefined, before, 0);
    expect(d.steps.map((s) => `${s.change} ${s.id}`)).toEqual(['added a', 'added b', 'added f']);
    expect(diffText(d, 'w.yaml').split('\n')[0]).toBe('w.yaml against w (not registered):');
  });

  it('diff - a document that is not YAML or not a mapping is refused with what it is', () => {
    expect(() => parseWorkflowText('a: [', 'x.yaml')).toThrow(InvalidInputError);
    expect(() => parseWorkflowText('- a', 'x.yaml')).toThrow('x.yaml is not a workflow document (a mapping with "name" and "steps")');
  });
});

describe('run --local retargeting', () => {
  it('retarget - every step targets the local agent; strategy, maxParallel and maxFailures stay; what was ignored is listed', () => {
    const r = retarget(
      doc('name: w\nsteps:\n  - id: a\n    target: { labels: { role: db }, wait: 5m }\n    run: echo\n  - id: b\n    target: { agent: web-1, strategy: all, maxParallel: 2 }\n    run: echo\n  - id: c\n    run: echo\n  - id: gate\n    approval: { message: ok? }\nfinally:\n  - id: f\n    target: { matchExpressions: [{ key: site, operator: In, values: [ams, fra] }] }\n    run: echo\n'),
      'local',
    );
    expect((r.doc.steps as { target?: unknown }[]).map((s) => s.target)).toEqual([{ agent: 'local' }, { agent: 'local', strategy: 'all', maxParallel: 2 }, { agent: 'local' }, undefined]);
    expect((r.doc.finally as { target: unknown }[])[0].target).toEqual({ agent: 'local' });
    expect(r.ignored).toEqual([{ id: 'a', target: 'role=db' }, { id: 'b', target: 'agent=web-1' }, { id: 'f', target: 'site In (ams,fra)' }]);
    expect(r.approvals).toEqual(['gate']);
  });

  it('retarget - inline ssh hosts make the agent a proxy for their network; inventory devices are refused', () => {
    const inline = retarget(doc('name: w\nsteps:\n  - id: s\n    ssh: { host: 10.0.0.1, user: u, credential: c, network: lab, commands: [show] }\n'), 'local');
    expect(inline.networks).toEqual(['lab']);
    expect(() => retarget(doc('name: w\nsteps:\n  - id: s\n    ssh: { device: core-1, commands: [show] }\n'), 'local')).toThrow('step s drives a device of the inventory, and --local has no inventory');
  });
});

describe('saved fleet files', () => {
  it('fleet snapshot - what `drover fleet -o json` prints is read; anything else names the agent and the field', () => {
    const text = JSON.stringify([{ name: 'a', state: 'connected', labels: { role: 'x' }, draining: false, runningSteps: 1, heartbeat: { cpuPercent: 12.5 }, lastSeen: '2026-12-03T10:00:00.000Z' }]);
    expect(parseFleetSnapshot(text, 'f.json')).toEqual([{ name: 'a', state: 'connected', labels: { role: 'x' }, draining: false, runningSteps: 1, heartbeat: { cpuPercent: 12.5 } }]);
    expect(() => parseFleetSnapshot('{"agents": []}', 'f.json')).toThrow('f.json: a fleet snapshot is a list of agents, got an object');
    expect(() => parseFleetSnapshot('[{"name": "a", "state": "up", "labels": {}}]', 'f.json')).toThrow('f.json: agent 1 (a): "state" must be one of connected, disconnected, lost, got "up"');
    expect(() => parseFleetSnapshot('[{"name": "a", "state": "lost", "labels": {"n": 1}}]', 'f.json')).toThrow('f.json: agent 1 (a): "labels" must be an object of strings');
    expect(() => parseFleetSnapshot('[', 'f.json')).toThrow(/^f\.json is neither JSON nor YAML/);
  });
});

describe('did-you-mean for values', () => {
  it('compiler - a value outside an enum names what was given and the nearest allowed one', () => {
    const source = 'name: x\nparams:\n  n: { type: strin }\nsteps:\n  - id: a\n    run: echo\n    retry: { attempts: 2, backoff: exponentail }\n';
    expect(compile({ source, params: {}, mode: 'validate' }).problems.map((p) => `${p.line}:${p.column} ${p.message}`)).toEqual([
      '3:8 Invalid option: expected one of "string"|"number"|"boolean"|"list", got "strin" (did you mean "string"?)',
      '7:27 Invalid option: expected one of "fixed"|"exponential", got "exponentail" (did you mean "exponential"?)',
    ]);
  });
});

describe('validate with a fleet', () => {
  it('validate mode - with a fleet, a target no agent matches is a warning at its line; without one, nothing is said', () => {
    const source = 'name: w\nsteps:\n  - id: a\n    target: { labels: { role: db } }\n    run: echo\n  - id: b\n    target: { labels: { role: web } }\n    run: echo\n';
    expect(compile({ source, params: {}, mode: 'validate' }).problems).toEqual([]);
    expect(compile({ source, params: {}, mode: 'validate', fleet: [fleetAgent('w1', { role: 'web' })] }).problems).toEqual([
      { path: 'steps[0].target', line: 4, column: 5, severity: 'warning', message: 'no agent in the fleet matches role=db now' },
    ]);
  });
});
