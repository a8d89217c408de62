import { describe, expect, it } from 'vitest';
import { compile } from '../../common/workflow/compiler/compile.js';

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
    ['a step with no kind', `name: x\nsteps:\n  - { id: a }\n`, /step "a" has nothing to do: give it one of run, command, script, http, file, sleep/],
    ['a step with two kinds', `name: x\nsteps:\n  - { id: a, run: "true", sleep: 1s }\n`, /step "a" has more than one kind \(run, sleep\)/],
    ['an approval without approvers', `name: x\nsteps:\n  - { id: a, approval: { message: hi } }\n`, /missing required field "approvers"/, 'steps[0].approval.approvers'],
    ['an expression in a script body', `name: x\nparams: { u: {} }\nsteps:\n  - { id: a, script: "echo \${{ params.u }}" }\n`, /may not be pasted into shell text/, 'steps[0].script'],
    ['a type error in an expression', `name: x\nparams: { n: { type: number, default: 2 } }\nsteps:\n  - { id: a, run: "true", env: { X: "\${{ params.n + 'x' }}" } }\n`, /no such overload: int \+ string/],
    ['a condition that is not boolean', `name: x\nparams: { n: { type: number, default: 2 } }\nsteps:\n  - { id: a, run: "true", when: "params.n + 1" }\n`, /condition "params.n \+ 1" is of type int; a condition must be true or false/],
    ['an unknown variable', `name: x\nsteps:\n  - { id: a, run: "true", when: "foo.bar" }\n`, /Unknown variable: foo/],
    ['item outside forEach', `name: x\nsteps:\n  - { id: a, run: "true", env: { X: "\${{ item }}" } }\n`, /"item" is only available in forEach steps/],
    ['a step reference not in needs', `name: x\nsteps:\n  - { id: a, run: "true" }\n  - { id: b, run: "true", env: { X: "\${{ steps.a.outputs.v }}" } }\n`, /refers to step "a", which is not in this step's needs/],
    ['forEach with strategy all', `name: x\nparams: { l: { type: list, default: [1] } }\nsteps:\n  - { id: a, run: "true", forEach: "\${{ params.l }}", target: { strategy: all } }\n`, /forEach and target.strategy "all" cannot be combined/],
    ['forEach over a non-list', `name: x\nparams: { s: { default: abc } }\nsteps:\n  - { id: a, run: "true", forEach: "\${{ params.s }}" }\n`, /forEach "params.s" must give a list, got string/],
    ['maxParallel without a fan-out', `name: x\nsteps:\n  - { id: a, run: "true", target: { maxParallel: 2 } }\n`, /maxParallel and maxFailures apply to fan-outs/],
    ['a bad label operator', `name: x\nsteps:\n  - { id: a, run: "true", target: { matchExpressions: [ { key: k, operator: Has } ] } }\n`, /operator must be one of In, NotIn, Exists, DoesNotExist/],
    ['a need on a finally step', `name: x\nsteps:\n  - { id: a, run: "true", needs: [f] }\nfinally:\n  - { id: f, run: "true" }\n`, /cannot need finally step "f"/],
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

describe('compiler - param patterns (RE2)', () => {
  const doc = (pattern: string) => `name: p\nparams:\n  v: { type: string, pattern: ${JSON.stringify(pattern)} }\nsteps: [ { id: s, run: "true" } ]\n`;
  const SYNTAX = '(patterns use RE2 syntax: docs/security.md#patterns)';
  // name, pattern, value, the errors as "path: message" (none: the value is accepted)
  const cases: [string, string, string, (string | RegExp)[]][] = [
    ['a value that matches', '^[a-z][a-z0-9-]{1,31}$', 'alice-2', []],
    ['a value that does not match', '^[a-z][a-z0-9-]{1,31}$', 'Alice', ['params.v: param "v" must match /^[a-z][a-z0-9-]{1,31}$/, got "Alice"']],
    ['named groups and inline flags', '(?i)^(?P<major>v\\d+)\\.(?<minor>\\d+)$', 'V1.2', []],
    ['nested quantifiers against 32 characters', '^(a+)+$', `${'a'.repeat(32)}!`, [`params.v: param "v" must match /^(a+)+$/, got "${'a'.repeat(32)}!"`]],
    ['nested quantifiers against 5000 characters', '^(a+)+$', `${'a'.repeat(5000)}!`, [`params.v: param "v" must match /^(a+)+$/, got "${'a'.repeat(5000)}!"`]],
    ['nested quantifiers, a matching value', '^(a+)+$', 'a'.repeat(5000), []],
    [
      'a lookahead',
      '^(?=v)v[0-9.]+$',
      'v1',
      [
        'params.v.pattern: param "v" pattern /^(?=v)v[0-9.]+$/ cannot be used: it uses lookahead (?=…) or (?!…), which RE2 does not support because it cannot be matched in linear time ' +
          `(RE2: invalid or unsupported Perl syntax: \`(?=\`); match the text itself instead, e.g. /v\\d/ for /v(?=\\d)/ ${SYNTAX}`,
      ],
    ],
    [
      'a backreference',
      '^(a)\\1$',
      'aa',
      [
        'params.v.pattern: param "v" pattern /^(a)\\1$/ cannot be used: it uses a backreference (\\1, \\k<name>), which RE2 does not support because it cannot be matched in linear time ' +
          `(RE2: invalid escape sequence: \`\\1\`); spell out what the group matches again, e.g. /aa|bb/ for /(a|b)\\1/ ${SYNTAX}`,
      ],
    ],
    ['a lookbehind', '(?<!x)y', 'y', [/^params\.v\.pattern: param "v" pattern \/\(\?<!x\)y\/ cannot be used: it uses lookbehind/]],
    ['a syntax error', '(unclosed', 'x', [`params.v.pattern: param "v" pattern /(unclosed/ cannot be used: missing closing ): \`(unclosed\`; correct it ${SYNTAX}`]],
    ['a pattern over 1024 characters', 'a'.repeat(1025), 'a', [/^params\.v\.pattern: .* it is 1025 characters long, more than 1024; shorten it/]],
    ['a value over 8192 characters', '^a+$', 'a'.repeat(8193), ['params.v: param "v" is 8193 characters long; a value checked against a pattern may have at most 8192']],
  ];
  for (const [name, pattern, value, expected] of cases) {
    it(`compiler - param pattern: ${name}`, () => {
      const got = errors(doc(pattern), { v: value }).map((e) => `${e.path}: ${e.message}`);
      expect(got).toHaveLength(expected.length);
      expected.forEach((e, i) => (typeof e === 'string' ? expect(got[i]).toBe(e) : expect(got[i]).toMatch(e)));
    });
  }

  it('compiler - a pattern RE2 refuses is reported when validating, without a value', () => {
    const res = compile({ source: doc('(?=x)'), params: {}, mode: 'validate' });
    expect(res.problems.map((p) => [p.path, p.line, p.message.split(':')[0]])).toEqual([['params.v.pattern', 3, 'param "v" pattern /(?=x)/ cannot be used']]);
  });
});

describe('compiler - expansion', () => {
  const fleet = ['w1', 'w2', 'w3'].map((name, i) => ({
    name,
    labels: { tier: 'web', zone: ['a', 'b', 'c'][i] },
    state: 'connected' as const,
    draining: name === 'w3',
    runningSteps: 0,
    cpuPercent: 0,
  }));

  it('compiler - strategy all expands to one instance per matching agent that is not draining', () => {
    const { plan } = compile({
      source: `name: x\nsteps:\n  - { id: d, run: "true", target: { labels: { tier: web }, strategy: all, maxParallel: 1, maxFailures: "50%" } }\n  - { id: v, run: "true", needs: [d] }\n`,
      params: {},
      fleet,
    });
    expect(plan!.steps.map((s) => [s.id, s.agent])).toEqual([
      ['d[w1]', 'w1'],
      ['d[w2]', 'w2'],
      ['v', ''],
    ]);
    expect(plan!.groups).toEqual([
      { id: 'd', over: 'agents', instances: ['d[w1]', 'd[w2]'], maxParallel: 1, maxFailures: 1, needs: [], continueOnError: false, isFinally: false },
    ]);
    expect(plan!.steps.find((s) => s.id === 'v')!.needs).toEqual(['d']);
  });

  it('compiler - matchExpressions select by set and existence', () => {
    const res = compile({
      source: `name: x\nsteps:\n  - id: d\n    run: "true"\n    target:\n      strategy: all\n      matchExpressions: [ { key: zone, operator: In, values: [a, c] }, { key: gone, operator: DoesNotExist } ]\n`,
      params: {},
      fleet: fleet.map((a) => ({ ...a, draining: false })),
    });
    expect(res.plan!.groups[0].instances).toEqual(['d[w1]', 'd[w3]']);
  });

  it('compiler - forEach makes one instance per item with the item as JSON', () => {
    const { plan } = compile({ source: `name: x\nparams: { l: { type: list } }\nsteps:\n  - { id: g, run: "true", forEach: "\${{ params.l }}" }\n`, params: { l: '["a", 2]' } });
    expect(plan!.steps.map((s) => [s.id, s.itemJson])).toEqual([
      ['g[0]', '"a"'],
      ['g[1]', '2'],
    ]);
  });

  it('compiler - a target no agent matches is a warning, not an error', () => {
    const res = compile({ source: `name: x\nsteps:\n  - { id: a, run: "true", target: { labels: { role: db } } }\n`, params: {}, fleet });
    expect(res.plan).toBeDefined();
    expect(res.problems).toEqual([expect.objectContaining({ severity: 'warning', message: 'no agent in the fleet matches role=db now' })]);
  });
});

describe('compiler - param errors are told apart from document errors', () => {
  const doc = `name: p
params:
  username: { type: string, pattern: "^[a-z]+$" }
  count: { type: number, default: 2 }
steps:
  - { id: a, run: "true" }
`;
  it('compiler - a missing, unknown or ill-typed param value is an invalid-params result with paths', () => {
    const cases: Record<string, string>[] = [{}, { username: 'Bob' }, { username: 'bob', nope: '1' }, { username: 'bob', count: 'x' }];
    for (const params of cases) {
      const res = compile({ source: doc, params });
      expect(res.plan).toBeUndefined();
      expect(res.invalidParams).toBe(true);
      expect(res.problems.every((p) => p.path.startsWith('params'))).toBe(true);
    }
  });

  it('compiler - a document error, or a default that does not fit its own type, is not an invalid-params result', () => {
    const broken = compile({ source: doc.replace('run: "true"', 'needs: [zz], run: "true"'), params: { username: 'Bob' } });
    expect(broken.invalidParams).toBe(false);
    const badDefault = compile({ source: doc.replace('default: 2', 'default: two'), params: { username: 'bob' } });
    expect(badDefault.problems[0].message).toMatch(/param "count" must be a number/);
    expect(badDefault.invalidParams).toBe(false);
  });
});

describe('compiler - the env rewrite of an expression in shell text quotes the variable', () => {
  const suggestion = (run: string) => {
    const res = compile({ source: `name: x\nparams: { username: {} }\nsteps:\n  - id: a\n    run: ${JSON.stringify(run)}\n`, params: { username: 'u' } });
    return /env instead: run: (.*)  env: \{/.exec(res.problems[0].message)?.[1];
  };
  it('compiler - inside double quotes, outside quotes, inside single quotes, and before a name character', () => {
    expect(suggestion('echo "hello ${{ params.username }}"')).toBe('echo "hello $USERNAME"');
    expect(suggestion('echo hello ${{ params.username }}')).toBe('echo hello "$USERNAME"');
    expect(suggestion('echo "${{ params.username }}"')).toBe('echo "$USERNAME"');
    expect(suggestion("echo 'hello ${{ params.username }}'")).toBe(`echo 'hello '"$USERNAME"`);
    expect(suggestion('echo "${{ params.username }}_x" \\" ${{ params.username }}')).toBe('echo "${USERNAME}_x" \\" "$USERNAME"');
  });
});
