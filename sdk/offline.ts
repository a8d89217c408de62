/**
 * Workflows checked and planned on this machine, with no control plane and no
 * network: the control plane's own compiler and placement
 * (common/workflow/), so a file gives the same problems, the same messages
 * and, against the same fleet snapshot, the same plan and hash as the
 * control plane would. What needs the control plane's state is left out:
 * whether the secrets a step names are stored, the devices of the inventory
 * unless given, and which registered version a file is.
 */
import { parse } from 'yaml';
import { compile } from '../common/workflow/compiler/compile.js';
import { compileFailure } from '../common/workflow/compiler/failure.js';
import { workflowJsonSchemaText } from '../common/workflow/compiler/json-schema.js';
import type { FleetAgent, FleetDevice } from '../common/workflow/model/target.js';
import { placeRun } from '../common/workflow/placement/place-run.js';
import { previewWaves } from '../common/workflow/placement/preview.js';
import type { PlanPreviewOut } from '../proto/index.js';
import { toPlanPreview, toValidation } from './convert.js';
import { InvalidInputError, InvalidParamsError, InvalidWorkflowError } from './errors.js';
import { encodeParams } from './params.js';
import { resolveWorkflow, workflowSource } from './source.js';
import type { Agent, Device, Params, PlanPreview, WorkflowDocument, WorkflowRef, WorkflowValidation } from './types.js';

/** The JSON Schema of the workflow format (2020-12), as text: what `drover schema` prints and schema/workflow.schema.json holds. */
export function workflowJsonSchema(): string {
  return workflowJsonSchemaText();
}

/** An agent as a fleet snapshot needs it: what `drover fleet -o json` prints has these fields and more. */
export type SnapshotAgent = Pick<Agent, 'name' | 'state' | 'labels' | 'draining' | 'runningSteps'> & { heartbeat?: Pick<NonNullable<Agent['heartbeat']>, 'cpuPercent'> };

/** A device as a snapshot needs it: what `drover device list -o json` prints has these fields and more. */
export type SnapshotDevice = Pick<Device, 'name' | 'host' | 'port' | 'user' | 'credential' | 'network' | 'labels' | 'maxSessions'>;

/** What `planWorkflow` plans against. */
export interface FleetSnapshot {
  agents: readonly SnapshotAgent[];
  /** The device inventory, for ssh steps; none when absent. */
  devices?: readonly SnapshotDevice[];
}

/**
 * Compiles a workflow (a file path or a document object) as `drover validate`
 * does, on this machine: every error and warning, in document order. An
 * invalid workflow resolves with `valid: false`; it does not reject.
 */
export async function validateWorkflow(workflow: string | WorkflowDocument): Promise<WorkflowValidation> {
  const { source } = await workflowSource(workflow);
  const res = compile({ source, params: {}, mode: 'validate' });
  return toValidation({ workflow: res.workflow, problems: res.problems, valid: !res.problems.some((p) => p.severity === 'error'), registeredVersion: 0, sameAsVersion: 0 });
}

/**
 * What a run would do on the fleet of `snapshot` (`drover fleet -o json`):
 * the same preview, hash included, as `workflows.plan` gives from a control
 * plane whose fleet is that snapshot. The workflow is a file path or a
 * document (a registry reference needs the control plane). Rejects with
 * InvalidWorkflowError or InvalidParamsError.
 */
export async function planWorkflow(workflow: string | WorkflowDocument | WorkflowRef, params: Params, snapshot: FleetSnapshot): Promise<PlanPreview> {
  const resolved = await resolveWorkflow(workflow);
  if (resolved.kind === 'ref') {
    throw new InvalidInputError(`${resolved.ref} is a registry reference (no file of that name exists), which cannot be planned offline; give a workflow file`, {
      hint: 'plan it against the control plane instead: leave out --fleet',
    });
  }
  const { source, filename } = resolved;
  const fleet = fleetAgents(snapshot.agents);
  const devices: FleetDevice[] = (snapshot.devices ?? []).map((d) => ({ ...d, labels: { ...d.labels } }));
  const res = compile({ source, params: encodeParams(params), fleet, devices });
  if (!res.plan) {
    const f = compileFailure(filename || 'workflow', res.problems, res.invalidParams);
    const Err = f.code === 'INVALID_PARAMS' ? InvalidParamsError : InvalidWorkflowError;
    throw new Err(f.message, { hint: f.hint, problems: res.problems });
  }
  const { plan } = res;
  const { placement, waiting, blockers } = placeRun(plan, fleet);
  // As the control plane's PlanRun answers it (control-plane/api/workflow-api.ts), then converted as the SDK converts that.
  const waves = previewWaves(plan, placement, fleet).map((w) => ({
    ...w,
    steps: w.steps.map((s) => ({ ...s, matches: s.matches.map((m) => ({ ...m, state: `AGENT_STATE_${m.state.toUpperCase()}` })) })),
  }));
  return toPlanPreview({ workflow: plan.workflow, version: 0, hash: plan.hash, waves, problems: [...res.problems, ...waiting, ...blockers], params: plan.params } as PlanPreviewOut);
}

/** The agents of a snapshot as the compiler and placement see them, sorted by name as the control plane lists them. */
function fleetAgents(agents: readonly SnapshotAgent[]): FleetAgent[] {
  return agents
    .map((a) => ({ name: a.name, labels: { ...a.labels }, state: a.state, draining: a.draining, runningSteps: a.runningSteps, cpuPercent: a.heartbeat?.cpuPercent ?? 0 }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

const STATES: readonly string[] = ['connected', 'disconnected', 'lost'];

/**
 * Reads a saved fleet: the JSON (or YAML) that `drover fleet -o json` prints,
 * a list of agents. `file` names it in errors, which say which agent and
 * field is wrong. Throws InvalidInputError.
 */
export function parseFleetSnapshot(text: string, file: string): SnapshotAgent[] {
  const hint = 'save the fleet with `drover fleet -o json > fleet.json` (a list of agents with name, state, labels, draining, runningSteps)';
  const value = parseDocument(text, file, hint);
  if (!Array.isArray(value)) throw new InvalidInputError(`${file}: a fleet snapshot is a list of agents, got ${describe(value)}`, { hint });
  return value.map((a: unknown, i) => {
    const bad = (what: string) => new InvalidInputError(`${file}: agent ${i + 1}${isObject(a) && typeof a.name === 'string' ? ` (${a.name})` : ''}: ${what}`, { hint });
    if (!isObject(a)) throw bad(`expected an object, got ${describe(a)}`);
    if (typeof a.name !== 'string' || !a.name) throw bad('"name" must be a non-empty string');
    if (typeof a.state !== 'string' || !STATES.includes(a.state)) throw bad(`"state" must be one of ${STATES.join(', ')}, got ${JSON.stringify(a.state)}`);
    if (!isObject(a.labels) || !Object.values(a.labels).every((v) => typeof v === 'string')) throw bad('"labels" must be an object of strings');
    const draining = a.draining ?? false;
    if (typeof draining !== 'boolean') throw bad('"draining" must be true or false');
    const runningSteps = a.runningSteps ?? 0;
    if (typeof runningSteps !== 'number' || runningSteps < 0) throw bad('"runningSteps" must be a number of 0 or more');
    const cpu = isObject(a.heartbeat) ? (a.heartbeat.cpuPercent ?? 0) : 0;
    if (typeof cpu !== 'number') throw bad('"heartbeat.cpuPercent" must be a number');
    return { name: a.name, state: a.state as Agent['state'], labels: a.labels as Record<string, string>, draining, runningSteps, heartbeat: { cpuPercent: cpu } };
  });
}

/** Reads a saved device inventory: what `drover device list -o json` prints. Throws InvalidInputError. */
export function parseDeviceSnapshot(text: string, file: string): SnapshotDevice[] {
  const hint = 'save the inventory with `drover device list -o json > devices.json`';
  const value = parseDocument(text, file, hint);
  if (!Array.isArray(value)) throw new InvalidInputError(`${file}: a device inventory is a list of devices, got ${describe(value)}`, { hint });
  return value.map((d: unknown, i) => {
    const bad = (what: string) => new InvalidInputError(`${file}: device ${i + 1}${isObject(d) && typeof d.name === 'string' ? ` (${d.name})` : ''}: ${what}`, { hint });
    if (!isObject(d)) throw bad(`expected an object, got ${describe(d)}`);
    for (const k of ['name', 'host', 'user', 'credential', 'network'] as const) if (typeof d[k] !== 'string') throw bad(`"${k}" must be a string`);
    for (const k of ['port', 'maxSessions'] as const) if (typeof d[k] !== 'number') throw bad(`"${k}" must be a number`);
    if (!isObject(d.labels) || !Object.values(d.labels).every((v) => typeof v === 'string')) throw bad('"labels" must be an object of strings');
    return d as unknown as SnapshotDevice;
  });
}

function parseDocument(text: string, file: string, hint: string): unknown {
  try {
    return parse(text);
  } catch (err) {
    throw new InvalidInputError(`${file} is neither JSON nor YAML: ${(err as Error).message.split('\n')[0]}`, { hint, cause: err });
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function describe(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}
