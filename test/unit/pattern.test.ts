import { RE2JSSyntaxException } from 're2js';
import { describe, expect, it } from 'vitest';
import { compilePattern, MAX_PATTERN_LENGTH, PatternError } from '../../common/pattern.js';

/** The PatternError compiling `source` throws (the test fails when it compiles). */
const refusal = (source: string, what = 'ssh.prompt'): PatternError => {
  try {
    compilePattern(source, what);
  } catch (err) {
    expect(err).toBeInstanceOf(PatternError);
    return err as PatternError;
  }
  throw new Error(`${source} compiled`);
};

const SYNTAX = '(patterns use RE2 syntax: docs/security.md#patterns)';

describe('common - patterns', () => {
  it('pattern - ordinary patterns match as RegExp does', () => {
    const cases: [string, string][] = [
      ['^[a-z][a-z0-9-]{1,31}$', 'alice-2'],
      ['^[a-z][a-z0-9-]{1,31}$', 'Alice'],
      ['^v[0-9.]+$', 'v1.4.2'],
      ['^v[0-9.]+$', 'v1.4.2\n'],
      ['error|warning', 'a warning here'],
      ['^\\s*% ?Invalid\\b', "  % Invalid input detected at '^' marker."],
      ['^[\\w.@()\\[\\]<>/:~+-]+ ?[>#$%\\]] ?$', 'switch1(config-if)#'],
      ['^[\\w.@()\\[\\]<>/:~+-]+ ?[>#$%\\]] ?$', 'Total: 5 %s'],
      ['(?P<major>\\d+)\\.(?<minor>\\d+)', 'v10.2'],
      ['', 'anything'],
    ];
    for (const [source, text] of cases) {
      const expected = new RegExp(source.replace('(?P<', '(?<')).test(text);
      expect(compilePattern(source, 'test').test(text), `/${source}/ on ${JSON.stringify(text)}`).toBe(expected);
    }
  });

  it('pattern - inline flags work (RegExp has no such syntax in Node 20)', () => {
    expect(compilePattern('(?i)^error', 'test').test('ERROR: disk full')).toBe(true);
    expect(compilePattern('(?m)^b$', 'test').test('a\nb\nc')).toBe(true);
    expect(compilePattern('^b$', 'test').test('a\nb\nc')).toBe(false);
  });

  it('pattern - nested quantifiers run in linear time: ^(a+)+$ against 32, 5000 and 100000 characters', () => {
    const p = compilePattern('^(a+)+$', 'param "v" pattern');
    for (const n of [32, 5000, 100_000]) expect(p.test(`${'a'.repeat(n)}!`), `${n} characters`).toBe(false);
    expect(p.test('a'.repeat(5000))).toBe(true);
  });

  it('pattern - lookahead is refused with RE2 reason and a fix', () => {
    const err = refusal('^(?=v)v\\d');
    expect(err.code).toBe('INVALID_PATTERN');
    expect(err.name).toBe('PatternError');
    expect(err.cause).toBeInstanceOf(RE2JSSyntaxException);
    expect(err.message).toBe(
      'ssh.prompt /^(?=v)v\\d/ cannot be used: it uses lookahead (?=…) or (?!…), which RE2 does not support because it cannot be matched in linear time ' +
        `(RE2: invalid or unsupported Perl syntax: \`(?=\`); match the text itself instead, e.g. /v\\d/ for /v(?=\\d)/ ${SYNTAX}`,
    );
  });

  it('pattern - backreferences are refused with RE2 reason and a fix', () => {
    expect(refusal('(a)\\1', 'param "v" pattern').message).toBe(
      'param "v" pattern /(a)\\1/ cannot be used: it uses a backreference (\\1, \\k<name>), which RE2 does not support because it cannot be matched in linear time ' +
        `(RE2: invalid escape sequence: \`\\1\`); spell out what the group matches again, e.g. /aa|bb/ for /(a|b)\\1/ ${SYNTAX}`,
    );
  });

  it('pattern - other refusals name the construct', () => {
    const cases: [string, RegExp][] = [
      ['(?!x)', /it uses lookahead/],
      ['(?<=a)b', /it uses lookbehind \(\?<=…\) or \(\?<!…\)/],
      ['(?<!a)b', /it uses lookbehind/],
      ['(?<n>a)\\k<n>', /it uses a backreference/],
      ['\\u0041', /\\uXXXX is JavaScript syntax .*; write the character as \\x\{XXXX\}/],
      ['a{1001}', /a count is over 1000, or nested counts multiply to more than 1000 \(RE2: invalid repeat count: `\{1001\}`\)/],
      ['(a{100}){100}', /nested counts multiply/],
      ['(unclosed', /^ssh.prompt \/\(unclosed\/ cannot be used: missing closing \): `\(unclosed`; correct it/],
      ['[z-a]', /invalid character class range: `z-a`/],
    ];
    for (const [source, message] of cases) expect(refusal(source).message, source).toMatch(message);
  });

  it('pattern - a pattern over the length limit is refused before it is compiled', () => {
    expect(compilePattern('a'.repeat(MAX_PATTERN_LENGTH), 'test').test('a'.repeat(MAX_PATTERN_LENGTH))).toBe(true);
    const err = refusal('a'.repeat(MAX_PATTERN_LENGTH + 1));
    expect(err.message).toBe(`ssh.prompt /${'a'.repeat(77)}…/ cannot be used: it is 1025 characters long, more than 1024; shorten it ${SYNTAX}`);
    expect(err.cause).toBeUndefined();
  });

  it('pattern - a pattern that compiles to too large a program is refused', () => {
    expect(compilePattern('\\d{1000}', 'test').test('1'.repeat(1000))).toBe(true);
    expect(refusal('a{1000}b{1000}').message).toBe(
      'ssh.prompt /a{1000}b{1000}/ cannot be used: it compiles to 2002 RE2 instructions, more than 2000; a counted repetition like {500} copies what it repeats that many times: use +, * or a smaller count',
    );
  });
});
