/** The CLI config file (sdk/cli/config.ts): keys, relative paths, and errors naming the file, line and key. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configFile } from '../../sdk/cli/config.js';
import { parseConfig } from '../../sdk/cli/config-file.js';
import { InvalidInputError } from '../../sdk/index.js';

const dir = mkdtempSync(join(tmpdir(), 'drover-config-'));
const file = join(dir, 'config.yaml');

function refusal(text: string): string {
  try {
    parseConfig(text, file);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidInputError);
    return (err as Error).message;
  }
  throw new Error('accepted');
}

describe('cli config', () => {
  it('config - where it is: DROVER_CONFIG, XDG_CONFIG_HOME, ~/.config', () => {
    expect(configFile({ DROVER_CONFIG: '/etc/d.yaml', XDG_CONFIG_HOME: '/x' })).toBe('/etc/d.yaml');
    expect(configFile({ XDG_CONFIG_HOME: '/x' })).toBe('/x/drover/config.yaml');
    expect(configFile({})).toMatch(/\/\.config\/drover\/config\.yaml$/);
  });

  it('config - address, token from tokenFile (relative to the file), ca made absolute, output; server is read as address', () => {
    writeFileSync(join(dir, 'tok'), 'secret-token\n');
    expect(parseConfig('address: cp:7400\ntokenFile: tok\nca: certs/ca.pem\noutput: wide\n', file)).toEqual({
      address: 'cp:7400', token: 'secret-token', ca: join(dir, 'certs/ca.pem'), output: 'wide',
    });
    expect(parseConfig('server: old:7400\n', file)).toEqual({ address: 'old:7400' });
    expect(parseConfig('# nothing yet\n', file)).toEqual({});
  });

  it('config - refusals name the file, the line and the key', () => {
    expect(refusal('address: a:1\n\ntoken_file: x\n')).toBe(`config file ${file} line 3: unknown key "token_file"`);
    expect(refusal('address: a:1\noutput: xml\n')).toBe(`config file ${file} line 2: key "output": "xml" is not one of table, wide, json, yaml`);
    expect(refusal('address: [a, b]\n')).toBe(`config file ${file} line 1: key "address" must be a non-empty string`);
    expect(refusal('tokenFile: missing\n')).toBe(`config file ${file} line 1: key "tokenFile": ${join(dir, 'missing')} does not exist`);
    expect(refusal('address: a:1\nca: x: y\n')).toBe(`config file ${file} line 2: Nested mappings are not allowed in compact mappings`);
    expect(refusal('- a\n- b\n')).toBe(`config file ${file} line 1: expected a mapping of keys to values`);
  });
});
