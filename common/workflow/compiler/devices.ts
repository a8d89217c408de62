/** ssh steps and the device inventory: which registered devices a step drives, and whether a proxy agent can reach them. */
import type { Problem } from '../../errors.js';
import type { SshPlan, StepPlan, TargetPlan } from '../model/plan.js';
import { describeTarget, matches, proxiesFor, type FleetAgent, type FleetDevice } from '../model/target.js';
import type { Problems } from './problems.js';
import { DEFAULT_NETWORK, type StepDoc, type WorkflowDoc } from './schema.js';
import type { PathSegment } from './source.js';
import { targetPlan } from './step-plan.js';
import { didYouMean } from './suggest.js';

/**
 * The devices an ssh step with a registered device drives: the named one, or
 * those its selector matches (exactly one for strategy one). 'inline' for an
 * inline host. Problems are reported with `severity` (errors for a run,
 * warnings when validating against the inventory now).
 */
export function selectDevices(
  s: StepDoc,
  target: TargetPlan,
  devices: FleetDevice[],
  path: PathSegment[],
  problems: Problems,
  severity: Problem['severity'],
): FleetDevice[] | 'inline' {
  if (s.ssh?.host !== undefined) return 'inline';
  if (target.device) {
    const d = devices.find((x) => x.name === target.device);
    if (d) return [d];
    const at = s.ssh?.device !== undefined ? [...path, 'ssh', 'device'] : [...path, 'target', 'device'];
    problems.add(
      at,
      `no device named "${target.device}" in the inventory${didYouMean(target.device, devices.map((x) => x.name))}; register it with \`drover device add ${target.device} --host HOST --user USER --credential NAME\` (see \`drover device list\`)`,
      severity,
    );
    return [];
  }
  const selected = devices.filter((d) => matches({ name: d.name, labels: d.labels }, { ...target, agent: '' })).sort((a, b) => a.name.localeCompare(b.name));
  const want = describeTarget({ ...target, device: '' });
  if (selected.length === 0) {
    const known = [...new Set(devices.flatMap((d) => Object.entries(d.labels).map(([k, v]) => `${k}=${v}`)))].sort();
    problems.add([...path, 'target'], `no device in the inventory matches ${want}; device labels: ${known.join(' ') || 'none (no device registered: `drover device add`)'}`, severity);
  } else if (selected.length > 1 && target.strategy !== 'all') {
    const names = selected.map((d) => d.name);
    problems.add(
      [...path, 'target'],
      `${want} matches ${selected.length} devices (${names.slice(0, 8).join(', ')}${names.length > 8 ? ', …' : ''}); add strategy: all to run on each, or narrow the selector`,
      severity,
    );
  }
  return selected;
}

/** A step's ssh plan bound to a registered device. */
export function onDevice(step: StepPlan, d: FleetDevice): StepPlan {
  const ssh: SshPlan = { ...step.ssh!, device: d.name, host: d.host, port: d.port, user: d.user, credential: d.credential, network: d.network, maxSessions: d.maxSessions };
  return { ...step, ssh, target: { ...step.target, device: d.name } };
}

/** validate mode with the inventory at hand: unknown devices and networks without proxies are warnings. */
export function checkDeviceRefs(wf: WorkflowDoc, devices: FleetDevice[], fleet: FleetAgent[] | undefined, problems: Problems) {
  const declared = [...wf.steps.map((s, i) => ({ s, path: ['steps', i] as PathSegment[] })), ...(wf.finally ?? []).map((s, i) => ({ s, path: ['finally', i] as PathSegment[] }))];
  for (const { s, path } of declared) {
    if (!s.ssh) continue;
    const sel = selectDevices(s, targetPlan(s), devices, path, problems, 'warning');
    const networks = sel === 'inline' ? [s.ssh.network ?? DEFAULT_NETWORK] : [...new Set(sel.map((d) => d.network))];
    if (fleet) warnNoProxy(networks, fleet, path, problems);
  }
}

/** A warning for each network no usable agent proxies for now. */
export function warnNoProxy(networks: string[], fleet: FleetAgent[], path: PathSegment[], problems: Problems) {
  for (const n of networks) {
    if (!fleet.some((a) => a.state !== 'lost' && proxiesFor(a, n))) {
      problems.add([...path, 'ssh'], `no agent in the fleet proxies for network "${n}" now (start one with --label proxy=${n})`, 'warning');
    }
  }
}
