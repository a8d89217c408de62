/**
 * Regular expressions written by users (a param's `pattern`, an ssh step's
 * `prompt` and `errorPattern`) are compiled here, with RE2 (re2js, pure
 * JavaScript, so it bundles into the agent), never with RegExp. RE2 matches
 * in time linear in the text: `^(a+)+$` against 32 characters took V8's
 * backtracking engine 16.8 s, and takes RE2 microseconds. The price is the
 * syntax RE2 cannot run in linear time (lookaround, backreferences): a
 * pattern using it is a PatternError that says why and what to write
 * instead. The limits below bound the rest: compile time by the pattern's
 * length, and matching by the size of its compiled program.
 */
import { RE2JS, RE2JSException, RE2JSSyntaxException } from 're2js';

/**
 * The longest pattern accepted, in characters. RE2's compile time grows with
 * the pattern (a counted repetition copies what it repeats), up to about
 * 0.6 s at this length.
 */
export const MAX_PATTERN_LENGTH = 1024;

/**
 * The most instructions a compiled pattern may have. Matching costs up to
 * this much work per character of text when RE2 falls back from its DFA;
 * real patterns stay far below (a full IPv6 address check is about 970,
 * the default ssh prompt 11).
 */
export const MAX_PATTERN_PROGRAM = 2000;

/**
 * The longest text a param value may be to be checked against the param's
 * pattern, in characters: with MAX_PATTERN_PROGRAM this keeps one check
 * under a second in the worst case (microseconds for usual patterns).
 */
export const MAX_PATTERN_INPUT = 8192;

/** Where the accepted syntax is described, for error messages. */
const SYNTAX = 'patterns use RE2 syntax: docs/security.md#patterns';

/** A pattern RE2 will not compile, or one over the limits; `reason` says which. */
export class PatternError extends Error {
  override name = 'PatternError';
  readonly code = 'INVALID_PATTERN';
  constructor(
    /** The pattern as written. */
    readonly pattern: string,
    /** What the pattern is, as the message starts: `ssh.prompt`, `param "user" pattern`. */
    readonly what: string,
    /** Why it is refused, with RE2's own words where RE2 refused it. */
    readonly reason: string,
    /** What to write instead. */
    readonly fix: string,
    options?: { cause?: unknown },
  ) {
    super(`${what} ${shown(pattern)} cannot be used: ${reason}; ${fix}`, options);
  }
}

/** A compiled pattern; compile once, test as often as needed. */
export interface Pattern {
  readonly source: string;
  /** Whether the pattern matches anywhere in `text` (as RegExp.prototype.test, without flags). */
  test(text: string): boolean;
}

/**
 * Compiles `source` with RE2, no flags (inline `(?i)`, `(?m)`, `(?s)` work).
 * Throws a PatternError naming `what` for a pattern RE2 refuses or one over
 * MAX_PATTERN_LENGTH or MAX_PATTERN_PROGRAM.
 */
export function compilePattern(source: string, what: string): Pattern {
  if (source.length > MAX_PATTERN_LENGTH) {
    throw new PatternError(source, what, `it is ${source.length} characters long, more than ${MAX_PATTERN_LENGTH}`, `shorten it (${SYNTAX})`);
  }
  let re: RE2JS;
  try {
    re = RE2JS.compile(source);
  } catch (err) {
    if (!(err instanceof RE2JSException)) throw err;
    const { reason, fix } = explain(err);
    throw new PatternError(source, what, reason, fix, { cause: err });
  }
  const size = re.programSize();
  if (size > MAX_PATTERN_PROGRAM) {
    throw new PatternError(
      source,
      what,
      `it compiles to ${size} RE2 instructions, more than ${MAX_PATTERN_PROGRAM}`,
      'a counted repetition like {500} copies what it repeats that many times: use +, * or a smaller count',
    );
  }
  return { source, test: (text) => re.test(text) };
}

/** Why RE2 refused a pattern, in terms of what the writer meant, and the fix. */
function explain(err: RE2JSException): { reason: string; fix: string } {
  if (!(err instanceof RE2JSSyntaxException)) return { reason: err.message, fix: `correct it (${SYNTAX})` };
  const at = err.getPattern() ?? '';
  const re2 = `RE2: ${err.getDescription()}${at ? `: \`${at}\`` : ''}`;
  const linear = 'which RE2 does not support because it cannot be matched in linear time';
  if (at.startsWith('(?=') || at.startsWith('(?!')) {
    return { reason: `it uses lookahead (?=…) or (?!…), ${linear} (${re2})`, fix: `match the text itself instead, e.g. /v\\d/ for /v(?=\\d)/ (${SYNTAX})` };
  }
  if (at.startsWith('(?<=') || at.startsWith('(?<!')) {
    return { reason: `it uses lookbehind (?<=…) or (?<!…), ${linear} (${re2})`, fix: `match the text itself instead, e.g. /v\\d/ for /(?<=v)\\d/ (${SYNTAX})` };
  }
  if (/^\\([1-9]|k)/.test(at)) {
    return { reason: `it uses a backreference (\\1, \\k<name>), ${linear} (${re2})`, fix: `spell out what the group matches again, e.g. /aa|bb/ for /(a|b)\\1/ (${SYNTAX})` };
  }
  if (at.startsWith('\\u')) {
    return { reason: `\\uXXXX is JavaScript syntax (${re2})`, fix: `write the character as \\x{XXXX} (${SYNTAX})` };
  }
  if (err.getDescription() === 'invalid repeat count') {
    return { reason: `a count is over 1000, or nested counts multiply to more than 1000 (${re2})`, fix: `use a smaller count, + or * (${SYNTAX})` };
  }
  return { reason: re2.slice('RE2: '.length), fix: `correct it (${SYNTAX})` };
}

/** The pattern as messages show it: between slashes, as written, and cut when long. */
function shown(source: string): string {
  return `/${source.length > 80 ? `${source.slice(0, 77)}…` : source}/`;
}
