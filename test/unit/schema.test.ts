import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const COMMITTED = 'schema/workflow.schema.json';

/** A JSON Schema validator, when one happens to be installed; the compiler is the real validator. */
function installedAjv(): string | undefined {
  try {
    return createRequire(import.meta.url).resolve('ajv/dist/2020');
  } catch {
    return undefined;
  }
}

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
  it('schema - the committed schema is up to date (run `npm run gen:schema` after editing control-plane/compiler/schema.ts)', () => {
    const out = mkdtempSync(join(tmpdir(), 'drover-schema-'));
    execFileSync(process.execPath, ['--import', 'tsx', 'scripts/gen-schema.ts', out]);
    expect(readFileSync(COMMITTED, 'utf8')).toBe(readFileSync(join(out, 'workflow.schema.json'), 'utf8'));
  });

  it('schema - carries $schema, $id, title and a description for every field (add .describe() in control-plane/compiler/schema.ts, then `npm run gen:schema`)', () => {
    const schema = JSON.parse(readFileSync(COMMITTED, 'utf8')) as JsonSchema & Record<string, unknown>;
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.$id).toBe('urn:drover:schema:workflow:v1');
    expect(schema.title).toBe('Drover workflow');
    expect(undescribed(schema, '')).toEqual([]);
  });

  it.skipIf(!installedAjv())('schema - accepts examples/onboarding.yaml (only when a JSON Schema validator is installed)', async () => {
    const { default: Ajv } = (await import(installedAjv()!)) as { default: new (o: object) => { compile(s: object): ((d: unknown) => boolean) & { errors?: unknown } } };
    const validate = new Ajv({ strict: false }).compile(JSON.parse(readFileSync(COMMITTED, 'utf8')) as object);
    const ok = validate(parse(readFileSync('examples/onboarding.yaml', 'utf8')));
    expect(validate.errors ?? null).toBeNull();
    expect(ok).toBe(true);
  });
});
