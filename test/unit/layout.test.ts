import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/** Folders of control-plane/ and the folders each may not import: what both need lives in model/. */
const FORBIDDEN: Record<string, string[]> = {
  'control-plane/compiler': ['control-plane/scheduler'],
  'control-plane/scheduler': ['control-plane/compiler'],
  'control-plane/model': ['control-plane/compiler', 'control-plane/scheduler'],
};

const imports = (dir: string): [string, string][] =>
  readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .flatMap((f) => {
      const file = join(dir, f);
      const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
      return importedFiles.filter((i) => i.fileName.startsWith('.')).map((i): [string, string] => [file, relative('.', join(file, '..', i.fileName))]);
    });

describe('layout', () => {
  it('layout - compiler/ and scheduler/ do not import each other; model/ imports neither', () => {
    const violations: string[] = [];
    for (const [dir, forbidden] of Object.entries(FORBIDDEN)) {
      for (const [file, target] of imports(dir)) {
        if (forbidden.some((f) => target.startsWith(`${f}/`))) violations.push(`${file} imports ${target}`);
      }
    }
    expect(violations).toEqual([]);
  });
});
