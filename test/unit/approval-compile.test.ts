import { describe, expect, it } from 'vitest';
import { compile } from '../../common/workflow/compiler/compile.js';
import { place } from '../../common/workflow/placement/placement.js';
import { fleetAgent } from '../helpers/fleet-agent.js';

const errors = (source: string, params: Record<string, string> = {}) =>
  compile({ source, params })
    .problems.filter((p) => p.severity === 'error')
    .map((p) => `${p.path}: ${p.message}`);

const GATE = `name: deploy
params:
  version: { type: string, default: "1.2" }
  token: { type: string, secret: true, default: "s3cr3t" }
env: { REGION: eu }
steps:
  - id: build
    run: ./build
  - id: gate
    needs: [build]
    approval:
      approvers: [operator, alice]
      message: "Ship \${{ params.version }} built as \${{ steps.build.outputs.image }}?"
      timeout: 30m
      onTimeout: approve
  - id: ship
    needs: [gate]
    run: ./ship
`;

describe('compiler - approval steps', () => {
  it('compiler - an approval step compiles to a gate with its approvers, message, timeout and onTimeout, no env and no agent', () => {
    const res = compile({ source: GATE, params: {}, fleet: [fleetAgent('edge-1', {})] });
    expect(res.problems.filter((p) => p.severity === 'error')).toEqual([]);
    const gate = res.plan!.steps.find((s) => s.id === 'gate')!;
    expect(gate.kind).toBe('approval');
    expect(gate.approval).toEqual({ approvers: ['operator', 'alice'], message: 'Ship ${{ params.version }} built as ${{ steps.build.outputs.image }}?', timeoutMs: 1_800_000, onTimeout: 'approve' });
    expect(gate.env).toEqual({});
    expect(res.plan!.steps.find((s) => s.id === 'build')!.approval).toBeUndefined();
    // No "no agent matches" warning: a gate has no target.
    expect(res.problems.filter((p) => p.path.startsWith('steps[1]'))).toEqual([]);
    expect(place(res.plan!.steps, [fleetAgent('edge-1', {})]).agents).toEqual({ build: 'edge-1', gate: '', ship: 'edge-1' });
  });

  it('compiler - onTimeout defaults to fail and the timeout to none', () => {
    const res = compile({ source: `name: x\nsteps:\n  - { id: g, approval: { approvers: [admin] } }\n`, params: {} });
    expect(res.plan!.steps[0].approval).toEqual({ approvers: ['admin'], message: '', timeoutMs: 0, onTimeout: 'fail' });
  });

  it.each([
    ['a target', `target: { labels: { role: web } }`, 'steps[0].target: an approval step takes no target: it runs on no agent; put the work before or after it in steps of their own'],
    ['a retry', `retry: { attempts: 2 }`, 'steps[0].retry: an approval step takes no retry: a gate is decided once; a rejected one fails (or, with continueOnError, lets the run go on)'],
    ['env', `env: { A: b }`, 'steps[0].env: an approval step takes no env: it runs no process; use ${{ }} in approval.message'],
    ['secrets', `secrets: [API_KEY]`, 'steps[0].secrets: an approval step takes no secrets: it runs no process, and its message is shown to people'],
    ['forEach', `forEach: "\${{ [1, 2] }}"`, 'steps[0].forEach: an approval step takes no forEach: a gate is decided once; put one approval step before the forEach step'],
    ['a step timeout', `timeout: 5m`, 'steps[0].timeout: an approval step takes no timeout: use approval.timeout (and approval.onTimeout)'],
  ])('compiler - an approval step with %s is refused', (_what, extra, message) => {
    expect(errors(`name: x\nsteps:\n  - id: g\n    approval: { approvers: [operator] }\n    ${extra}\n`)).toContain(message);
  });

  it('compiler - an approval step in finally is refused', () => {
    expect(errors(`name: x\nsteps:\n  - { id: a, run: "true" }\nfinally:\n  - { id: g, approval: { approvers: [operator] } }\n`)).toEqual([
      'finally[0].approval: an approval step cannot be a finally step: finally steps run after a cancel or a failure too, when nobody is asked anything; put the gate in steps',
    ]);
  });

  it('compiler - a gate message naming a step outside needs, an agent or a secret param is refused', () => {
    const src = `name: x
params: { token: { type: string, secret: true, default: x } }
steps:
  - { id: a, run: "true" }
  - id: g
    when: "agent.name == 'x'"
    approval: { approvers: [operator], message: "\${{ steps.a.outputs.v }} \${{ params.token }}" }
`;
    expect(errors(src)).toEqual([
      `steps[1].approval.message: expression refers to step "a", which is not in this step's needs; add it to needs`,
      `steps[1].when: "agent.name == 'x'" uses agent, but an approval step runs on no agent: use params and the outputs of steps in needs`,
      `steps[1].approval.message: an approval step may not use secret param "token": its message is shown to approvers and kept in the run's history`,
    ]);
  });

  it('compiler - a bad approver, a bad onTimeout and a bad timeout name the field', () => {
    expect(errors(`name: x\nsteps:\n  - { id: g, approval: { approvers: ["no spaces"], onTimeout: wait, timeout: soon } }\n`)).toEqual([
      'steps[0].approval.approvers[0]: an approver is a role (viewer, operator, admin) or a token name: letters, digits, ".", "_", "@" and "-"',
      'steps[0].approval.timeout: not a duration: use a number of seconds or a string like "30s", "5m", "1h30m", "250ms"',
      expect.stringMatching(/^steps\[0\]\.approval\.onTimeout: .*fail.*approve/),
    ]);
  });
});
