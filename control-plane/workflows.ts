/**
 * The workflow registry: versioned workflow documents by name. Applying a
 * document stores a new version only when its text changed. The latest
 * version's `triggers` are the ones that act (webhooks, schedules, NATS
 * subjects); their names are unique across the registry.
 */
import { createHash } from 'node:crypto';
import type { Problem } from '../common/errors.js';
import { compile } from '../common/workflow/compiler/compile.js';
import { ApiError, InvalidWorkflowError, NotFoundError } from './errors.js';
import { Topic } from './events.js';
import type { TriggerPlan } from '../common/workflow/model/plan.js';
import { flushOrUndo, requireWritable } from './store-guard.js';
import type { Store, WorkflowVersion } from './store/store.js';

export interface Applied {
  version: WorkflowVersion;
  changed: boolean;
}

/** The triggers of one registered workflow's latest version. */
export interface WorkflowTriggers {
  workflow: string;
  version: number;
  triggers: TriggerPlan[];
}

/** The name a trigger is unique by across the registry, with what it is, for messages. */
function triggerKey(t: TriggerPlan): { key: string; what: string } | undefined {
  if (t.kind === 'webhook') return { key: `webhook:${t.name}`, what: `webhook "${t.name}"` };
  if (t.kind === 'cron') return { key: `schedule:${t.name}`, what: `schedule "${t.name}"` };
  return undefined;
}

export class Workflows {
  /** A new version was stored (not an unchanged re-apply): the trigger services read the triggers again. */
  readonly applied = new Topic<WorkflowVersion>();
  /** Compiled triggers by source hash (a version's source never changes). */
  private triggerCache = new Map<string, TriggerPlan[]>();

  constructor(
    private readonly store: Store,
    private readonly now: () => number,
  ) {}

  async apply(source: string, filename: string): Promise<Applied> {
    const res = compile({ source, params: {}, mode: 'validate' });
    if (!res.workflow || res.problems.some((p) => p.severity === 'error')) throw new InvalidWorkflowError(filename || 'workflow', res.problems);
    const clashes = this.triggerClashes(res.workflow, res.triggers ?? []);
    if (clashes.length) throw new InvalidWorkflowError(filename || 'workflow', [...res.problems, ...clashes]);
    const hash = createHash('sha256').update(source).digest('hex');
    const versions = this.store.workflowVersions(res.workflow);
    const latest = versions[versions.length - 1];
    if (latest?.hash === hash) return { version: latest, changed: false };
    requireWritable(this.store, `no new version of ${res.workflow} was stored`);
    const description = res.description ?? '';
    const version: WorkflowVersion = {
      name: res.workflow,
      version: (latest?.version ?? 0) + 1,
      hash,
      source,
      filename,
      description,
      createdMs: this.now(),
    };
    this.store.putWorkflowVersion(version);
    // Versions are never taken back: one that missed the disk now is written with the next write that succeeds.
    await flushOrUndo(this.store, `version ${version.version} of ${res.workflow} is kept but not yet on disk; it is written once a write succeeds`).finally(() =>
      this.applied.publish(version),
    );
    return { version, changed: true };
  }

  /** The triggers of every registered workflow's latest version (those with none left out). */
  triggers(): WorkflowTriggers[] {
    const out: WorkflowTriggers[] = [];
    for (const name of this.store.workflowNames()) {
      const versions = this.store.workflowVersions(name);
      const latest = versions[versions.length - 1];
      if (!latest) continue;
      let triggers = this.triggerCache.get(latest.hash);
      if (!triggers) {
        triggers = compile({ source: latest.source, params: {}, mode: 'validate' }).triggers ?? [];
        this.triggerCache.set(latest.hash, triggers);
      }
      if (triggers.length) out.push({ workflow: name, version: latest.version, triggers });
    }
    return out;
  }

  /**
   * What the registry says of a document of workflow `name` (for `drover
   * validate --server`): its latest version (0: not registered) and the
   * version whose text is `source` (0: none).
   */
  registered(name: string, source: string): { latest: number; sameAs: number } {
    const versions = this.store.workflowVersions(name);
    const hash = createHash('sha256').update(source).digest('hex');
    return { latest: versions[versions.length - 1]?.version ?? 0, sameAs: versions.find((v) => v.hash === hash)?.version ?? 0 };
  }

  /** Webhook and schedule names of `triggers` that another registered workflow already uses (apply refuses them). */
  triggerClashes(workflow: string, triggers: TriggerPlan[]): Problem[] {
    const taken = new Map<string, string>();
    for (const w of this.triggers()) {
      if (w.workflow === workflow) continue;
      for (const t of w.triggers) {
        const k = triggerKey(t);
        if (k) taken.set(k.key, w.workflow);
      }
    }
    return triggers.flatMap((t, i) => {
      const k = triggerKey(t);
      const owner = k && taken.get(k.key);
      return owner ? [{ path: `triggers[${i}]`, line: 0, column: 0, severity: 'error' as const, message: `${k.what} is already used by workflow ${owner}: trigger names are unique across the registry` }] : [];
    });
  }

  list(): { latest: WorkflowVersion; count: number }[] {
    return this.store.workflowNames().map((name) => {
      const v = this.store.workflowVersions(name);
      return { latest: v[v.length - 1], count: v.length };
    });
  }

  count(name: string): number {
    return this.store.workflowVersions(name).length;
  }

  /** Resolves "NAME" (latest) or "NAME@VERSION", or a name and a version number (0: latest). */
  get(ref: string, version = 0): WorkflowVersion {
    const m = /^([^@]+)(?:@(\d+))?$/.exec(ref.trim());
    if (!m) throw new ApiError('INVALID_PARAMS', `"${ref}" is not a workflow reference; use NAME or NAME@VERSION`);
    const name = m[1];
    const wanted = m[2] ? Number(m[2]) : version;
    const versions = this.store.workflowVersions(name);
    if (versions.length === 0) {
      const names = this.store.workflowNames();
      throw new NotFoundError(
        'WORKFLOW_NOT_FOUND',
        `no workflow named "${name}" in the registry`,
        names.length ? `registered workflows: ${names.join(', ')}; add one with \`drover workflow apply FILE\`` : 'add one with `drover workflow apply FILE`',
      );
    }
    const found = wanted ? versions.find((v) => v.version === wanted) : versions[versions.length - 1];
    if (!found) {
      throw new NotFoundError('WORKFLOW_NOT_FOUND', `workflow "${name}" has no version ${wanted}`, `versions 1 to ${versions.length} exist; see \`drover workflow show ${name}\``);
    }
    return found;
  }
}
