/** The problems a compile finds, each placed at its path's line and column in the document. */
import { compilePattern, PatternError, type Pattern } from '../../common/pattern.js';
import type { Problem } from '../../common/errors.js';
import { formatPath, type ParsedSource, type PathSegment } from './source.js';

/** Collects errors and warnings; every check of a compile adds to one. */
export class Problems {
  readonly list: Problem[] = [];
  constructor(private readonly src: ParsedSource) {}
  add(path: PathSegment[], message: string, severity: Problem['severity'] = 'error') {
    const { line, column } = this.src.position(path);
    this.list.push({ path: formatPath(path), line, column, message, severity });
  }
  get hasErrors() {
    return this.list.some((p) => p.severity === 'error');
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
