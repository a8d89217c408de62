import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { staticFile } from '../../control-plane/http/static.js';

describe('http static - which request paths name a dashboard file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-static-'));
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), '<html></html>');
  writeFileSync(join(dir, 'assets', 'a.js'), '');

  it('http static - the root is index.html, and files inside the folder are found', () => {
    expect(staticFile(dir, '/')).toBe(join(dir, 'index.html'));
    expect(staticFile(dir, '/index.html')).toBe(join(dir, 'index.html'));
    expect(staticFile(dir, '/app.js')).toBe(join(dir, 'app.js'));
    expect(staticFile(dir, '/assets/a.js')).toBe(join(dir, 'assets', 'a.js'));
    expect(staticFile(dir, '/assets/a%20b.css')).toBe(join(dir, 'assets', 'a b.css'));
  });

  it('http static - traversal, encoded or not, dot files, empty segments and unknown types name nothing', () => {
    for (const p of [
      '/../state.json',
      '/assets/../../state.json',
      '/assets/..%2f..%2fstate.json',
      '/%2e%2e/state.json',
      '/..%5cstate.json',
      '/assets\\..\\state.json',
      '/a%00.js',
      '/.env.json',
      '/assets//a.js',
      '/%E0%A4%A.js',
      '/state',
      '/admin.token',
      '/ca.pem',
    ]) {
      expect(staticFile(dir, p), p).toBeUndefined();
    }
  });
});
