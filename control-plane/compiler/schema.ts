/**
 * The workflow document's shape: the single source for validation (here) and
 * for the JSON Schema shipped to editors (scripts/gen-schema.ts).
 */
import { z } from 'zod';
import { parseDuration } from './duration.js';

const duration = z
  .union([z.string(), z.number()])
  .refine((v) => parseDuration(v) !== undefined, {
    message: 'not a duration: use a number of seconds or a string like "30s", "5m", "1h30m", "250ms"',
  })
  .describe('A duration: seconds as a number, or "250ms", "30s", "5m", "1h30m".');

const scalar = z.union([z.string(), z.number(), z.boolean()]);

export const stepId = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_-]{0,62}$/, 'step ids start with a letter and use letters, digits, "-" and "_" (at most 63)');

export const paramSchema = z.strictObject({
  type: z.enum(['string', 'number', 'boolean', 'list']).default('string'),
  description: z.string().optional(),
  default: z.union([scalar, z.array(scalar)]).optional(),
  required: z.boolean().optional(),
  enum: z.array(scalar).optional(),
  pattern: z.string().optional(),
});

export const targetSchema = z.strictObject({
  labels: z.record(z.string(), z.string()).optional().describe('Equality selector: every label must match.'),
  agent: z.string().optional().describe('Run on this agent by name.'),
});

export const retrySchema = z.strictObject({
  attempts: z.number().int().min(1).max(100),
  backoff: z.enum(['fixed', 'exponential']).optional(),
  initial: duration.optional(),
  max: duration.optional(),
  jitter: z.number().min(0).max(1).optional(),
  retryOn: z.array(z.number().int()).optional(),
});

export const stepSchema = z.strictObject({
  id: stepId,
  name: z.string().optional(),
  needs: z.array(z.string()).optional(),
  run: z.string().min(1).describe('Shell text run with /bin/sh -c. Pass values through env, never ${{ }}.'),
  env: z.record(z.string(), scalar).optional(),
  target: targetSchema.optional(),
  timeout: duration.optional(),
  retry: retrySchema.optional(),
  when: z.string().optional(),
  continueOnError: z.boolean().optional(),
});

export const workflowSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'workflow names use lower-case letters, digits, ".", "-" and "_"'),
  description: z.string().optional(),
  params: z.record(z.string(), paramSchema).optional(),
  env: z.record(z.string(), scalar).optional(),
  steps: z.array(stepSchema).min(1, 'a workflow needs at least one step'),
  finally: z.array(stepSchema).optional(),
});

export type WorkflowDoc = z.infer<typeof workflowSchema>;
export type StepDoc = z.infer<typeof stepSchema>;
export type ParamDoc = z.infer<typeof paramSchema>;

/** Field names per object kind, for did-you-mean suggestions on unknown keys. */
export const KNOWN_KEYS = {
  workflow: Object.keys(workflowSchema.shape),
  step: Object.keys(stepSchema.shape),
  param: Object.keys(paramSchema.shape),
  target: Object.keys(targetSchema.shape),
  retry: Object.keys(retrySchema.shape),
};
