import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const walk = (dir: string): string[] =>
  readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });

/** The .ts files below `dir` ([] when it does not exist yet). */
const sources = (dir: string): string[] => (existsSync(dir) ? walk(dir).filter((f) => f.endsWith('.ts')) : []);

/** What `file` imports: `local` for a path from the repo root (a relative import), else an npm or node: module as written. */
const importsOf = (file: string): { name: string; local: boolean }[] =>
  ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles.map(({ fileName: f }) =>
    f.startsWith('.') ? { name: relative('.', join(file, '..', f)), local: true } : { name: f, local: false },
  );

/**
 * The pure cores (DESIGN.md §1): decisions are functions of their inputs and
 * I/O sits at the edge. Files below these folders (some are still to come)
 * import no store, transport or executor, no gRPC, NATS or lowdb, and no
 * file-system, network or process module. The compiler, the plan model and
 * placement live in common/workflow/ (the CLI compiles offline with them).
 */
const PURE = ['control-plane/scheduler/', 'control-plane/model/', 'agent/slice/', 'common/'];
const EDGE_FOLDERS = ['control-plane/store/', 'control-plane/transport/', 'agent/link/', 'agent/executor/'];
const IO_MODULE = /^(node:)?(fs|fs\/promises|net|child_process)$/;
const EDGE_PACKAGE = /^(@grpc\/|@nats-io\/|nats$|lowdb($|\/))/;

/**
 * common/ is shared code, not an edge, so the rule above holds for it too,
 * except in the files listed here: each may import the modules named, for
 * the reason given (a local file both parts use, or the NATS options both
 * main.ts build; none opens a socket). No common/ file does anything when
 * imported: at top level it only declares and calls nothing from an I/O
 * module (checked below). docs/layout.md says the same for people.
 */
const COMMON_IO: Record<string, string[]> = {
  // Takes and releases a directory's LOCK file: its whole job.
  'common/dir-lock.ts': ['node:fs'],
  // Writes key and certificate files atomically: its whole job.
  'common/secret-file.ts': ['node:fs'],
  // Reads known_hosts and appends an accepted key, as ssh does, for the installer and ssh steps alike.
  'common/known-hosts.ts': ['node:fs'],
  // Refuses an unreadable --nats-creds/--nats-tls-* file at start, and builds the nats.js options both main.ts pass to connect().
  'common/nats-options.ts': ['node:fs', '@nats-io/nats-core', '@nats-io/transport-node'],
};

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
      for (const file of sources(part)) {
        for (const { name, local } of importsOf(file)) {
          if (!local) continue;
          const allowed = part === 'proto' ? ['proto'] : part === 'common' ? ['common', 'proto'] : [part, 'proto', 'common'];
          if (!allowed.includes(name.split('/')[0])) violations.push(`${file} imports ${name}`);
        }
      }
    }
    expect(violations).toEqual([]);
  });

  it('contract - the compiler, scheduler, model, slice machine and common/ import no store, transport, executor, gRPC, NATS, lowdb, fs, net or child_process', () => {
    const violations: string[] = [];
    for (const file of PURE.flatMap((dir) => sources(dir))) {
      for (const { name, local } of importsOf(file)) {
        const edge = local ? EDGE_FOLDERS.some((d) => name.startsWith(d)) : EDGE_PACKAGE.test(name) || IO_MODULE.test(name);
        if (edge && !COMMON_IO[file]?.includes(name)) violations.push(`${file} imports ${name}`);
      }
    }
    expect(violations).toEqual([]);
    for (const file of Object.keys(COMMON_IO)) expect(existsSync(file), `${file} is listed in COMMON_IO but gone: drop it from the list`).toBe(true);
  });

  it('contract - common/ files do nothing when imported: at top level they only declare, and call nothing from an I/O module', () => {
    const declares = (st: ts.Statement) =>
      ts.isImportDeclaration(st) || ts.isExportDeclaration(st) || ts.isFunctionDeclaration(st) || ts.isClassDeclaration(st) ||
      ts.isInterfaceDeclaration(st) || ts.isTypeAliasDeclaration(st) || ts.isEnumDeclaration(st) || ts.isVariableStatement(st);
    const violations: string[] = [];
    for (const file of sources('common')) {
      const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest);
      const io = new Set(
        sf.statements
          .filter((st): st is ts.ImportDeclaration => ts.isImportDeclaration(st) && IO_MODULE.test((st.moduleSpecifier as ts.StringLiteral).text))
          .flatMap(({ importClause: c }) => [c?.name, ...(c?.namedBindings ? (ts.isNamespaceImport(c.namedBindings) ? [c.namedBindings.name] : c.namedBindings.elements.map((e) => e.name)) : [])])
          .flatMap((id) => (id ? [id.text] : [])),
      );
      // Function bodies run when called, not when imported.
      const callsIo = (n: ts.Node): boolean =>
        !ts.isFunctionLike(n) && ((ts.isCallExpression(n) && io.has(n.expression.getText(sf).split('.')[0])) || ts.forEachChild(n, callsIo) === true);
      for (const st of sf.statements) {
        if (!declares(st)) violations.push(`${file}:${sf.getLineAndCharacterOfPosition(st.getStart(sf)).line + 1} runs a statement at import time`);
        else if (ts.isVariableStatement(st) && callsIo(st)) violations.push(`${file}:${sf.getLineAndCharacterOfPosition(st.getStart(sf)).line + 1} does I/O at import time`);
      }
    }
    expect(violations).toEqual([]);
  });
});
