import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const walk = (dir: string): string[] =>
  readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });

describe('contract', () => {
  it('contract - generated proto types are up to date (run `npm run gen` after editing .proto files)', () => {
    const out = mkdtempSync(join(tmpdir(), 'drover-gen-'));
    execFileSync(process.execPath, ['--import', 'tsx', 'scripts/gen-proto.ts', out]);
    const fresh = walk(out).map((f) => relative(out, f)).sort();
    const committed = walk('proto/gen').map((f) => relative('proto/gen', f)).sort();
    expect(committed).toEqual(fresh);
    for (const f of fresh) expect(readFileSync(join('proto/gen', f), 'utf8'), f).toBe(readFileSync(join(out, f), 'utf8'));
  });

  it('contract - every generated file says DO NOT EDIT', () => {
    for (const f of walk('proto/gen')) expect(readFileSync(f, 'utf8').split('\n')[0], f).toMatch(/DO NOT EDIT/);
  });

  it('contract - top-level parts import only proto/, common/ and npm packages (DESIGN.md §1)', () => {
    const parts = ['control-plane', 'agent', 'sdk', 'proto', 'common'];
    const violations: string[] = [];
    for (const part of parts) {
      for (const file of walk(part).filter((f) => f.endsWith('.ts'))) {
        const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
        for (const imp of importedFiles) {
          if (!imp.fileName.startsWith('.')) continue;
          const target = relative('.', join(file, '..', imp.fileName)).split('/')[0];
          const allowed = part === 'proto' ? ['proto'] : part === 'common' ? ['common', 'proto'] : [part, 'proto', 'common'];
          if (!allowed.includes(target)) violations.push(`${file} imports ${imp.fileName}`);
        }
      }
    }
    expect(violations).toEqual([]);
  });
});
