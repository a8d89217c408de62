/** The problems a compile finds, each placed at its path's line and column in the document. */
import { compilePattern, PatternError, type Pattern } from '../../pattern.js';
import type { Problem } from '../../errors.js';
import { formatPath, type ParsedSource, type PathSegment } from './source.js';

/** Collects errors and warnings; every check of a compile adds to one. */
export class Problems {
  readonly list: Problem[] = [];
  constructor(private readonly src: ParsedSource) {}
  /** Errors about the given param values (missing, unknown, wrong type, pattern, enum), not the document. */
  readonly paramValueErrors = new Set<Problem>();
  add(path: PathSegment[], message: string, severity: Problem['severity'] = 'error') {
    const { line, column } = this.src.position(path);
    this.list.push({ path: formatPath(path), line, column, message, severity });
  }
  /** An error about a given param value (INVALID_PARAMS when every error is one). */
  addParamValue(path: PathSegment[], message: string) {
    this.add(path, message);
    this.paramValueErrors.add(this.list[this.list.length - 1]);
  }
  get hasErrors() {
    return this.list.some((p) => p.severity === 'error');
  }
  /** Whether there are errors and each is about a param value: the document is fine, the params are not. */
  get onlyParamValueErrors() {
    const errors = this.list.filter((p) => p.severity === 'error');
    return errors.length > 0 && errors.every((p) => this.paramValueErrors.has(p));
  }
}

/** A user's pattern compiled with RE2; one it refuses is a problem at `path`, with the reason. */
export function checkedPattern(source: string, what: string, path: PathSegment[], problems: Problems): Pattern | undefined {
  try {
    return compilePattern(source, what);
  } catch (err) {
    if (!(err instanceof PatternError)) throw err;
    problems.add(path, err.message);
    return undefined;
  }
}
