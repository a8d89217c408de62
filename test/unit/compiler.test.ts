import { describe, expect, it } from 'vitest';
import { compile } from '../../control-plane/compiler/compile.js';

const ok = (source: string, params: Record<string, string> = {}) => {
  const res = compile({ source, params });
  expect(res.problems.filter((p) => p.severity === 'error')).toEqual([]);
  return res.plan!;
};

const errors = (source: string, params: Record<string, string> = {}) =>
  compile({ source, params }).problems.filter((p) => p.severity === 'error');

describe('compiler - valid documents', () => {
  it('compiler - binds params with defaults and keeps needs', () => {
    const plan = ok(
      `name: demo
params:
  user: { type: string, default: bob }
steps:
  - id: a
    run: echo "$U"
    env: { U: "\${{ params.user }}" }
  - id: b
    needs: [a]
    run: "true"
    timeout: 1m30s
    target: { labels: { role: web } }
`,
    );
    expect(plan.workflow).toBe('demo');
    expect(plan.params).toEqual({ user: 'bob' });
    expect(plan.steps.map((s) => [s.id, s.needs])).toEqual([
      ['a', []],
      ['b', ['a']],
    ]);
    expect(plan.steps[1].timeoutMs).toBe(90_000);
    expect(plan.steps[1].target.labels).toEqual({ role: 'web' });
  });

  it('compiler - accepts JSON documents', () => {
    const plan = ok(JSON.stringify({ name: 'j', steps: [{ id: 'a', run: 'true' }] }));
    expect(plan.steps).toHaveLength(1);
  });

  it('compiler - finally steps wait for every regular step', () => {
    const plan = ok(`name: f
steps:
  - { id: a, run: "true" }
  - { id: b, run: "true" }
finally:
  - { id: cleanup, run: "true" }
`);
    const cleanup = plan.steps.find((s) => s.id === 'cleanup')!;
    expect(cleanup.isFinally).toBe(true);
    expect(cleanup.needs).toEqual(['a', 'b']);
  });

  it('compiler - rewrites dashed step ids in expressions to CEL index form', () => {
    const plan = ok(`name: d
steps:
  - { id: create-account, run: "true" }
  - id: next
    needs: [create-account]
    run: echo "$UID"
    env: { UID: "\${{ steps.create-account.outputs.uid }}" }
`);
    expect(plan.steps[1].env.UID).toBe('${{ steps["create-account"].outputs.uid }}');
  });

  it('compiler - same input gives the same hash, different params a different one', () => {
    const doc = `name: h
params: { n: { type: number, default: 1 } }
steps: [ { id: a, run: "true" } ]
`;
    expect(ok(doc).hash).toBe(ok(doc).hash);
    expect(ok(doc, { n: '2' }).hash).not.toBe(ok(doc).hash);
  });
});

describe('compiler - errors', () => {
  const cases: [string, string, RegExp, string?][] = [
    ['unknown need', `name: x\nsteps:\n  - { id: a, run: "true", needs: [b] }\n`, /unknown step "b" in needs/, 'steps[0].needs[0]'],
    ['self need', `name: x\nsteps:\n  - { id: a, run: "true", needs: [a] }\n`, /cannot need itself/],
    [
      'cycle',
      `name: x\nsteps:\n  - { id: a, run: "true", needs: [c] }\n  - { id: b, run: "true", needs: [a] }\n  - { id: c, run: "true", needs: [b] }\n`,
      /dependency cycle: a -> c -> b -> a/,
    ],
    ['duplicate id', `name: x\nsteps:\n  - { id: a, run: "true" }\n  - { id: a, run: "false" }\n`, /duplicate step id "a"/, 'steps[1].id'],
    ['unknown field with suggestion', `name: x\nsteps:\n  - { id: a, run: "true", neds: [b] }\n`, /unknown field "neds" \(did you mean "needs"\?\)/, 'steps[0].neds'],
    ['bad duration', `name: x\nsteps:\n  - { id: a, run: "true", timeout: 5 minutes }\n`, /not a duration/, 'steps[0].timeout'],
    ['expression in shell text', `name: x\nparams: { u: {} }\nsteps:\n  - { id: a, run: "echo \${{ params.u }}" }\n`, /may not be pasted into shell text.*env: \{ U: "\$\{\{ params.u \}\}" \}/],
    ['unknown param reference', `name: x\nsteps:\n  - id: a\n    run: "true"\n    env: { A: "\${{ params.nope }}" }\n`, /unknown param "nope"/],
    ['missing steps', `name: x\n`, /missing required field "steps"/, 'steps'],
    ['not a mapping', `- just\n- a list\n`, /a workflow document is a mapping/],
    ['invalid YAML', `name: x\nsteps: [ {id: a, run: x}\n`, /invalid YAML/],
  ];
  for (const [name, source, message, path] of cases) {
    it(`compiler - rejects ${name}`, () => {
      const errs = errors(source);
      expect(errs.map((e) => e.message).join('\n')).toMatch(message);
      if (path) expect(errs.map((e) => e.path)).toContain(path);
    });
  }

  it('compiler - reports line and column for YAML problems', () => {
    const [err] = errors(`name: x
steps:
  - id: a
    run: "true"
    needs: [zzz]
`);
    expect(err).toMatchObject({ path: 'steps[0].needs[0]', line: 5, column: 13 });
  });

  it('compiler - reports every problem at once', () => {
    const errs = errors(`name: x
steps:
  - { id: a, run: "true", needs: [missing] }
  - { id: a, run: "true" }
  - { id: b, run: "true", timeout: soon }
  - { id: c, run: "echo \${{ params.x }}", tiemout: 3 }
`);
    const text = errs.map((e) => e.message).join('\n');
    expect(text).toMatch(/unknown step "missing"/);
    expect(text).toMatch(/duplicate step id "a"/);
    expect(text).toMatch(/not a duration/);
    expect(text).toMatch(/unknown field "tiemout"/);
    expect(text).toMatch(/may not be pasted into shell text/);
  });

  it('compiler - checks params: missing, unknown, wrong type, enum, pattern', () => {
    const doc = `name: p
params:
  user: { type: string, pattern: "^[a-z]+$" }
  count: { type: number, default: 1 }
  role: { type: string, enum: [a, b], default: a }
steps: [ { id: s, run: "true" } ]
`;
    expect(errors(doc)[0].message).toMatch(/missing param "user".*-p user=VALUE/);
    expect(errors(doc, { user: 'ok', extra: '1' })[0].message).toMatch(/unknown param "extra"/);
    expect(errors(doc, { user: 'ok', count: 'many' })[0].message).toMatch(/"count" must be a number/);
    expect(errors(doc, { user: 'ok', role: 'c' })[0].message).toMatch(/must be one of a, b/);
    expect(errors(doc, { user: 'Not Ok' })[0].message).toMatch(/must match/);
  });
});
