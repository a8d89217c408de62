/**
 * What a registered workflow's triggers need that this control plane lacks,
 * told to whoever applies it (`drover workflow apply` prints them as
 * warnings) and logged at start: the workflow is stored all the same, and
 * the trigger acts once the lack is made good.
 */
import type { Workflows } from '../workflows.js';
import type { HookSecrets } from './webhooks.js';

export interface TriggerEnvironment {
  workflows: Workflows;
  secrets: HookSecrets;
  /** The HTTP port is on (--http): webhooks are served. */
  http: boolean;
  /** The control plane has NATS (--nats): NATS triggers subscribe. */
  nats: boolean;
}

/** Warnings for one workflow's latest triggers (none for a workflow without triggers). */
export function triggerWarnings(env: TriggerEnvironment, workflow: string): string[] {
  const out: string[] = [];
  for (const t of env.workflows.triggers().find((w) => w.workflow === workflow)?.triggers ?? []) {
    if (t.kind === 'webhook') {
      if (!env.http) out.push(`webhook "${t.name}" is not served: this control plane runs without --http HOST:PORT`);
      if (env.secrets.value(t.secret) === undefined) out.push(`webhook "${t.name}" answers 503 until its secret is stored: drover secret set ${t.secret}`);
    } else if (t.kind === 'nats' && !env.nats) {
      out.push(`the NATS trigger on "${t.subject}" does nothing: this control plane runs without --nats`);
    }
  }
  return out;
}
