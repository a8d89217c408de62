/**
 * The workflow registry: versioned workflow documents by name. Applying a
 * document stores a new version only when its text changed.
 */
import { createHash } from 'node:crypto';
import { compile } from './compiler/compile.js';
import { ApiError, InvalidWorkflowError, NotFoundError } from './errors.js';
import { flushOrUndo, requireWritable } from './store-guard.js';
import type { Store, WorkflowVersion } from './store/store.js';

export interface Applied {
  version: WorkflowVersion;
  changed: boolean;
}

export class Workflows {
  constructor(
    private readonly store: Store,
    private readonly now: () => number,
  ) {}

  async apply(source: string, filename: string): Promise<Applied> {
    const res = compile({ source, params: {}, mode: 'validate' });
    if (!res.workflow || res.problems.some((p) => p.severity === 'error')) throw new InvalidWorkflowError(filename || 'workflow', res.problems);
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
    await flushOrUndo(this.store, `version ${version.version} of ${res.workflow} is kept but not yet on disk; it is written once a write succeeds`);
    return { version, changed: true };
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
