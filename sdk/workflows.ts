import type { PlanPreviewOut, ValidateWorkflowResponseOut, WorkflowInfoOut } from '../proto/index.js';
import type { Connection } from './connection.js';
import { toPlanPreview, toRegisteredWorkflow, toValidation } from './convert.js';
import { diffWorkflows, parseWorkflowText, type WorkflowDiff } from './diff.js';
import { InvalidInputError, WorkflowNotFoundError } from './errors.js';
import { planWorkflow, validateWorkflow, type FleetSnapshot } from './offline.js';
import { encodeParams } from './params.js';
import { parseWorkflowRef, withWorkflow, workflowSource } from './source.js';
import type { Params, PlanPreview, RegisteredWorkflow, WorkflowDocument, WorkflowRef, WorkflowValidation } from './types.js';

/** Options of `workflows.validate`. */
export interface ValidateOptions {
  /** Ask the control plane, which adds the checks that need its fleet, inventory and registry. Default false: compile on this machine. */
  remote?: boolean;
}

/** Options of `workflows.plan`. */
export interface PlanOptions {
  /** Plan on this machine against this fleet (and device inventory) instead of asking the control plane. */
  fleet?: FleetSnapshot;
}

/**
 * Workflow documents: checking them with the control plane's compiler,
 * previewing the plan a run would get, and the versioned registry.
 */
export class WorkflowsApi {
  /** @internal */
  constructor(private readonly conn: Connection) {}

  /**
   * Compiles a workflow (a file path or a document object) without running it
   * and reports every error and warning. An invalid workflow resolves with
   * `valid: false`; it does not reject.
   *
   * By default it compiles on this machine with the control plane's own
   * compiler, and needs no control plane (offline.ts `validateWorkflow`).
   * With `remote: true` the control plane compiles it and adds the checks
   * that need its state: targets no agent matches now, devices missing from
   * the inventory, trigger names another registered workflow uses, and the
   * registered versions of the workflow (`registry`).
   */
  async validate(workflow: string | WorkflowDocument, options: ValidateOptions = {}): Promise<WorkflowValidation> {
    if (!options.remote) return validateWorkflow(workflow);
    const request = await workflowSource(workflow);
    return toValidation(await this.conn.unary<ValidateWorkflowResponseOut>((cb) => this.conn.workflows.validateWorkflow(request, cb)));
  }

  /**
   * What a run would do if it started now: waves of steps, the agents each
   * target matches, fan-out instances and the plan hash (give it to
   * `runs.launch` as `expectPlanHash`). The workflow is a path, a document or
   * a registry reference, as for `runs.launch`. Rejects with
   * InvalidWorkflowError, InvalidParamsError or WorkflowNotFoundError.
   *
   * With `fleet` (a saved snapshot, `drover fleet -o json`), it plans on this
   * machine against that fleet instead, with no control plane: the same
   * preview and hash the control plane gives for that fleet (offline.ts
   * `planWorkflow`; a registry reference needs the control plane).
   */
  async plan(workflow: string | WorkflowDocument | WorkflowRef, params: Params = {}, options: PlanOptions = {}): Promise<PlanPreview> {
    if (options.fleet) return planWorkflow(workflow, params, options.fleet);
    const encoded = encodeParams(params);
    const preview = await withWorkflow(workflow, (resolved) => {
      const request = {
        ...(resolved.kind === 'ref' ? { workflowRef: resolved.ref } : { source: resolved.source, filename: resolved.filename }),
        params: encoded,
      };
      return this.conn.unary<PlanPreviewOut>((cb) => this.conn.workflows.planRun(request, cb));
    });
    return toPlanPreview(preview);
  }

  /**
   * Stores the workflow in the registry under its `name`. A new version is
   * created only when the text differs from the latest one; `changed` says
   * which happened. Rejects with InvalidWorkflowError.
   */
  async apply(workflow: string | WorkflowDocument): Promise<RegisteredWorkflow> {
    const request = await workflowSource(workflow);
    return toRegisteredWorkflow(await this.conn.unary<WorkflowInfoOut>((cb) => this.conn.workflows.applyWorkflow(request, cb)));
  }

  /**
   * What changes between a document (a file path or an object) and a
   * registered version, step by step (diff.ts): against `ref` (NAME or
   * NAME@VERSION), by default the latest version of the document's own
   * name. A name with no registered version gives every step as added
   * (`version: 0`). Rejects with WorkflowNotFoundError for a version that
   * does not exist, InvalidInputError for a document that cannot be read.
   */
  async diff(workflow: string | WorkflowDocument, ref?: string): Promise<WorkflowDiff> {
    const { source, filename } = await workflowSource(workflow);
    const after = parseWorkflowText(source, filename);
    const named = ref ?? (typeof after.name === 'string' ? after.name : '');
    if (!named) throw new InvalidInputError(`${filename} has no name to look up in the registry`, { hint: 'give the registered workflow to compare with: NAME or NAME@VERSION' });
    const wanted = parseWorkflowRef(named);
    if (!wanted) throw new InvalidInputError(`invalid workflow name "${named}"`, { hint: 'workflow names use lower-case letters, digits, ".", "-" and "_"; add @VERSION for a given version' });
    let registered: RegisteredWorkflow;
    try {
      registered = await this.get(named);
    } catch (err) {
      // Not registered yet (the latest version of a name is missing only when it has none): everything is new. A version asked for that does not exist is an error.
      if (err instanceof WorkflowNotFoundError && !wanted.version) return diffWorkflows(undefined, after, 0);
      throw err;
    }
    return diffWorkflows(parseWorkflowText(registered.source, `${registered.name}@${registered.version}`), after, registered.version);
  }

  /** Every registered workflow, by name, with its latest version. */
  async list(): Promise<RegisteredWorkflow[]> {
    const res = await this.conn.unary<{ workflows: WorkflowInfoOut[] }>((cb) => this.conn.workflows.listWorkflows({}, cb));
    return res.workflows.map(toRegisteredWorkflow).sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * One version of a registered workflow with its source: `get('deploy')` is
   * the latest, `get('deploy', 3)` or `get('deploy@3')` version 3. Rejects
   * with WorkflowNotFoundError.
   */
  async get(name: string, version?: number): Promise<RegisteredWorkflow> {
    const ref = parseWorkflowRef(name);
    if (!ref) {
      throw new InvalidInputError(`invalid workflow name "${name}"`, {
        hint: 'workflow names use lower-case letters, digits, ".", "-" and "_"; add @VERSION for a given version',
      });
    }
    if (version !== undefined && (!Number.isInteger(version) || version < 0)) {
      throw new InvalidInputError(`invalid workflow version ${version}: expected a positive integer (0 for the latest)`);
    }
    if (version && ref.version && version !== ref.version) {
      throw new InvalidInputError(`conflicting versions for ${ref.name}: "${name}" and ${version}`);
    }
    const request = { name: ref.name, version: version || ref.version };
    return toRegisteredWorkflow(await this.conn.unary<WorkflowInfoOut>((cb) => this.conn.workflows.getWorkflow(request, cb)));
  }
}
