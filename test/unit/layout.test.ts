import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * Folders of the compiler, the scheduler and their models, and the folders
 * each may not import: what both need lives in a model/. The compiler, the
 * plan model and placement are in common/workflow/, shared with the SDK
 * (offline validate and plan); the run machine stays in control-plane/.
 */
const COMPILER = 'common/workflow/compiler';
const SCHEDULERS = ['control-plane/scheduler', 'common/workflow/placement'];
const FORBIDDEN: Record<string, string[]> = {
  [COMPILER]: SCHEDULERS,
  'control-plane/scheduler': [COMPILER],
  'common/workflow/placement': [COMPILER, 'control-plane/scheduler'],
  'common/workflow/model': [COMPILER, ...SCHEDULERS],
  'control-plane/model': [COMPILER, ...SCHEDULERS],
};

const imports = (dir: string): [string, string][] =>
  readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .flatMap((f) => {
      const file = join(dir, f);
      const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
      return importedFiles.filter((i) => i.fileName.startsWith('.')).map((i): [string, string] => [file, relative('.', join(file, '..', i.fileName))]);
    });

/** The browser dashboard: its own folder, type-only proto/ imports, and only the npm packages it bundles. */
const DASHBOARD = 'control-plane/dashboard';
const DASHBOARD_PACKAGES = /^(preact(\/hooks|\/jsx-runtime)?|@dagrejs\/dagre)$/;

describe('layout', () => {
  it('layout - the compiler and the scheduler (with placement) do not import each other; model/ imports neither', () => {
    const violations: string[] = [];
    for (const [dir, forbidden] of Object.entries(FORBIDDEN)) {
      for (const [file, target] of imports(dir)) {
        if (forbidden.some((f) => target.startsWith(`${f}/`))) violations.push(`${file} imports ${target}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('layout - the dashboard imports nothing from control-plane/ server code, agent/ or sdk/, and proto/ for types only', () => {
    const violations: string[] = [];
    const files = readdirSync(DASHBOARD, { recursive: true, encoding: 'utf8' }).filter((f) => /\.tsx?$/.test(f));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const file = join(DASHBOARD, f);
      const src = readFileSync(file, 'utf8');
      for (const { fileName } of ts.preProcessFile(src, true, true).importedFiles) {
        if (!fileName.startsWith('.')) {
          if (!DASHBOARD_PACKAGES.test(fileName)) violations.push(`${file} imports package ${fileName}`);
          continue;
        }
        const target = relative('.', join(file, '..', fileName));
        if (target.startsWith(`${DASHBOARD}/`)) continue;
        if (!target.startsWith('proto/')) violations.push(`${file} imports ${target}`);
        else if (!new RegExp(`import type [^;]+ from '${fileName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}'`).test(src)) violations.push(`${file} imports ${target} for more than types`);
      }
    }
    expect(violations).toEqual([]);
  });
});
