/**
 * Parsing and checking the CLI config file (config.ts says where it is and
 * when it is read). Its own module so that the YAML parser loads only when
 * there is a file to parse.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, isMap, isScalar, type Pair } from 'yaml';
import { InvalidInputError } from '../errors.js';
import { CONFIG_KEYS, OUTPUT_FORMATS, type CliConfig, type OutputFormat } from './config.js';

/** Parses and checks a config file's text; `file` names it in errors and anchors relative paths. */
export function parseConfig(text: string, file: string): CliConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const fail = (offset: number | undefined, what: string): never => {
    const line = offset === undefined ? 0 : lines.linePos(offset).line;
    throw new InvalidInputError(`config file ${file}${line ? ` line ${line}` : ''}: ${what}`, {
      hint: `it is YAML with the keys ${CONFIG_KEYS.filter((k) => k !== 'server').join(', ')}; see "Config file" in the README`,
    });
  };
  if (doc.errors.length) fail(doc.errors[0].pos[0], doc.errors[0].message.split('\n')[0]);
  if (doc.contents === null) return {};
  if (!isMap(doc.contents)) fail(doc.contents.range?.[0], 'expected a mapping of keys to values');
  const out: CliConfig = {};
  const base = dirname(resolve(file));
  const path = (p: string) => (isAbsolute(p) ? p : resolve(base, p.replace(/^~(?=\/)/, homedir())));
  for (const pair of (doc.contents as { items: Pair[] }).items) {
    const keyNode = pair.key;
    const key = isScalar(keyNode) ? String(keyNode.value) : '';
    const at = isScalar(keyNode) ? keyNode.range?.[0] : undefined;
    if (!(CONFIG_KEYS as readonly string[]).includes(key)) fail(at, `unknown key "${key}"`);
    const value = isScalar(pair.value) ? pair.value.value : undefined;
    if (typeof value !== 'string' || !value) fail(at, `key "${key}" must be a non-empty string`);
    const v = value as string;
    switch (key as (typeof CONFIG_KEYS)[number]) {
      case 'address':
      case 'server':
        out.address = v;
        break;
      case 'token':
        out.token = v;
        break;
      case 'tokenFile': {
        const f = path(v);
        if (!existsSync(f)) fail(at, `key "tokenFile": ${f} does not exist`);
        out.token = readFileSync(f, 'utf8').trim();
        break;
      }
      case 'ca':
        out.ca = path(v);
        break;
      case 'output':
        if (!(OUTPUT_FORMATS as readonly string[]).includes(v)) fail(at, `key "output": "${v}" is not one of ${OUTPUT_FORMATS.join(', ')}`);
        out.output = v as OutputFormat;
        break;
    }
  }
  return out;
}
