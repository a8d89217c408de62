/**
 * Named secrets (`drover secret set|list|rm`) and the secret values of runs.
 * Values are sealed at rest (security/secret-box.ts) and opened only to build
 * the Assign of the one step that uses them, on its agent: each such read is
 * audited. No call returns a value; listings show names and dates.
 *
 * A param declared `secret: true` is sealed into its run (bound to the run id)
 * and dropped when the run ends. An ssh step's credential reference resolves
 * to the stored secret of that name when there is one (and `NAME.passphrase`
 * for an encrypted key), else to the proxy agent's own files.
 */
import type { StepSecret } from '../proto/index.js';
import { ApiError, NotFoundError } from './errors.js';
import type { StepPlan } from '../common/workflow/model/plan.js';
import type { AuditLog } from './security/audit.js';
import type { SecretBox } from './security/secret-box.js';
import { flushOrUndo, requireWritable } from './store-guard.js';
import type { RunRecord, SecretRecord, Store } from './store/store.js';

/** Secret names: as credential references are (letters, digits, ".", "-", "_"; at most 63). */
export const SECRET_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,62}$/;
/** Largest secret value (a private key fits with room to spare). */
export const MAX_SECRET_BYTES = 64 * 1024;

/** What the run machinery needs of secrets. */
export interface RunSecrets {
  /** Names of the stored secrets, for the compiler's check. */
  names(): string[];
  /** Seals a run's secret param values, bound to the run. */
  sealParams(runId: string, values: Record<string, string>): string;
  /** The secret values one step needs on `agent` (read now, audited). */
  forStep(run: RunRecord, step: StepPlan, agent: string): StepSecret[];
}

export interface SecretInfo {
  name: string;
  createdMs: number;
  updatedMs: number;
  updatedBy: string;
  version: number;
}

const info = ({ name, createdMs, updatedMs, updatedBy, version }: SecretRecord): SecretInfo => ({ name, createdMs, updatedMs, updatedBy, version });
const context = (name: string) => `secret:${name}`;

export class Secrets implements RunSecrets {
  constructor(
    private readonly store: Store,
    private readonly box: SecretBox,
    private readonly audit: AuditLog | undefined,
    private readonly now: () => number,
  ) {}

  /** Creates or replaces a secret; on disk when this resolves. */
  async set(name: string, value: string, by: string): Promise<SecretInfo> {
    if (!SECRET_NAME.test(name)) {
      throw new ApiError('INVALID_INPUT', `secret name "${name.slice(0, 80)}" is not valid: use letters, digits, ".", "-" and "_" (at most 63), starting with a letter, digit or "_"`);
    }
    if (value === '') throw new ApiError('INVALID_INPUT', `secret "${name}" has an empty value`, 'pipe the value on stdin, or give --from-file FILE');
    if (Buffer.byteLength(value) > MAX_SECRET_BYTES) throw new ApiError('INVALID_INPUT', `secret "${name}" is ${Buffer.byteLength(value)} bytes; the limit is ${MAX_SECRET_BYTES}`);
    requireWritable(this.store, `secret "${name}" was not stored`);
    const old = this.store.getSecret(name);
    const now = this.now();
    const rec: SecretRecord = { name, sealed: this.box.seal(value, context(name)), createdMs: old?.createdMs ?? now, updatedMs: now, updatedBy: by, version: (old?.version ?? 0) + 1 };
    this.store.putSecret(rec);
    await flushOrUndo(this.store, `secret "${name}" was not stored`, () => (old ? this.store.putSecret(old) : this.store.deleteSecret(name)));
    return info(rec);
  }

  /**
   * A stored secret's value, for checking webhook signatures on the control
   * plane itself (the value leaves nothing; each delivery it admits is
   * audited, so its reads are not). Undefined when none is stored or it
   * cannot be opened.
   */
  value(name: string): string | undefined {
    const rec = this.store.getSecret(name);
    if (!rec) return undefined;
    try {
      return this.box.open(rec.sealed, context(name));
    } catch {
      return undefined;
    }
  }

  list(): SecretInfo[] {
    return this.store.listSecrets().map(info);
  }

  names(): string[] {
    return this.store.listSecrets().map((s) => s.name);
  }

  async remove(name: string): Promise<SecretInfo> {
    const rec = this.store.getSecret(name);
    if (!rec) throw this.notFound(name);
    requireWritable(this.store, `secret "${name}" was not removed`);
    this.store.deleteSecret(name);
    await flushOrUndo(this.store, `secret "${name}" was not removed`, () => this.store.putSecret(rec));
    return info(rec);
  }

  sealParams(runId: string, values: Record<string, string>): string {
    return this.box.seal(JSON.stringify(values), `run:${runId}`);
  }

  forStep(run: RunRecord, step: StepPlan, agent: string): StepSecret[] {
    const out: StepSecret[] = [];
    const read = (name: string, required: boolean) => {
      const rec = this.store.getSecret(name);
      if (!rec && !required) return;
      this.audit?.record({
        actor: { kind: 'system', id: 'control-plane' },
        action: 'secret.read',
        target: name,
        result: rec ? 'ok' : 'SECRET_NOT_FOUND',
        detail: { run: run.id, step: step.id, agent },
      });
      // A secret removed (or unopenable) while its run was under way: the step fails on the agent, naming it.
      const value = rec && this.tryOpen(rec.sealed, context(name), { run: run.id, step: step.id, agent, secret: name });
      if (value !== undefined) out.push({ stepId: step.id, name, value, param: false });
    };
    for (const name of step.secrets ?? []) read(name, true);
    const cred = step.kind === 'ssh' ? step.ssh?.credential : '';
    if (cred && SECRET_NAME.test(cred)) {
      read(cred, false);
      read(`${cred}.passphrase`, false);
    }
    if (step.secretParams?.length && run.sealedParams) {
      const opened = this.tryOpen(run.sealedParams, `run:${run.id}`, { run: run.id, step: step.id, agent, secret: '(secret params)' });
      const values = opened === undefined ? {} : (JSON.parse(opened) as Record<string, string>);
      for (const name of step.secretParams) if (name in values) out.push({ stepId: step.id, name, value: values[name], param: true });
    }
    return out;
  }

  /**
   * Opens a sealed value; a key that no longer opens it (DROVER_SECRET_KEY
   * changed, the record edited) is audited and the value left out, so the
   * step fails on its agent instead of the control plane failing whole.
   */
  private tryOpen(sealed: string, ctx: string, detail: Record<string, string>): string | undefined {
    try {
      return this.box.open(sealed, ctx);
    } catch (err) {
      this.audit?.record({ actor: { kind: 'system', id: 'control-plane' }, action: 'secret.open-failed', target: detail.secret, result: 'SECRET_KEY_INVALID', detail: { ...detail, error: (err as Error).message.slice(0, 200) } });
      return undefined;
    }
  }

  private notFound(name: string): NotFoundError {
    const names = this.names();
    return new NotFoundError(
      'SECRET_NOT_FOUND',
      `no secret named "${name}"`,
      names.length ? `stored secrets: ${names.slice(0, 20).join(', ')}${names.length > 20 ? ', …' : ''}` : 'store one with `drover secret set NAME` (the value on stdin)',
    );
  }
}
