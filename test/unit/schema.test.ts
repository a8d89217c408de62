import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';

const COMMITTED = 'schema/workflow.schema.json';

type JsonSchema = { properties?: Record<string, JsonSchema>; items?: JsonSchema; additionalProperties?: JsonSchema | boolean; anyOf?: JsonSchema[]; description?: string };

function undescribed(node: JsonSchema, path: string): string[] {
  const out: string[] = [];
  for (const [key, child] of Object.entries(node.properties ?? {})) {
    if (!child.description) out.push(`${path}.${key}`);
    out.push(...undescribed(child, `${path}.${key}`));
  }
  if (node.items) out.push(...undescribed(node.items, `${path}[]`));
  if (node.additionalProperties && typeof node.additionalProperties === 'object') out.push(...undescribed(node.additionalProperties, `${path}.*`));
  for (const alt of node.anyOf ?? []) out.push(...undescribed(alt, path));
  return out;
}

describe('workflow JSON Schema', () => {
  it('schema - the committed schema is up to date (run `npm run gen:schema` after editing common/workflow/compiler/schema.ts)', () => {
    const out = mkdtempSync(join(tmpdir(), 'drover-schema-'));
    execFileSync(process.execPath, ['--import', 'tsx', 'scripts/gen-schema.ts', out]);
    expect(readFileSync(COMMITTED, 'utf8')).toBe(readFileSync(join(out, 'workflow.schema.json'), 'utf8'));
  });

  it('schema - carries $schema, $id, title and a description for every field (add .describe() in common/workflow/compiler/schema.ts, then `npm run gen:schema`)', () => {
    const schema = JSON.parse(readFileSync(COMMITTED, 'utf8')) as JsonSchema & Record<string, unknown>;
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.$id).toBe('urn:drover:schema:workflow:v1');
    expect(schema.title).toBe('Drover workflow');
    expect(undescribed(schema, '')).toEqual([]);
  });

  it('schema - accepts every example workflow (ajv, JSON Schema 2020-12)', () => {
    const validate = new Ajv2020({ strict: false }).compile(JSON.parse(readFileSync(COMMITTED, 'utf8')) as object);
    for (const f of readdirSync('examples').filter((n) => /\.ya?ml$/.test(n))) {
      const ok = validate(parse(readFileSync(join('examples', f), 'utf8')));
      expect(validate.errors ?? null, f).toBeNull();
      expect(ok, f).toBe(true);
    }
  });

  it('schema - rejects an unknown field, as the compiler does', () => {
    const validate = new Ajv2020({ strict: false }).compile(JSON.parse(readFileSync(COMMITTED, 'utf8')) as object);
    expect(validate({ name: 'x', steps: [{ id: 'a', run: 'true', neds: ['b'] }] })).toBe(false);
  });
});
