/**
 * Writes schema/workflow.schema.json, the JSON Schema of the workflow format
 * (common/workflow/compiler/json-schema.ts, from the zod schema the compiler
 * validates with; `drover schema` prints the same text).
 * Usage: tsx scripts/gen-schema.ts [outDir]   (default schema/)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { workflowJsonSchemaText } from '../common/workflow/compiler/json-schema.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = resolve(process.argv[2] ?? join(root, 'schema'));

mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'workflow.schema.json'), workflowJsonSchemaText());
