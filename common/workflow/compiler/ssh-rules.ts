import { checkedPattern, type Problems } from './problems.js';
import { isObject } from './raw.js';
import type { PathSegment } from './source.js';

/** Rules of an ssh step that span fields: where the device comes from, and its patterns. */
export function checkSsh(ssh: Record<string, unknown>, t: Record<string, unknown>, path: PathSegment[], problems: Problems) {
  const at = (...sub: PathSegment[]) => [...path, ...sub];
  const inline = ssh.host !== undefined;
  const selector = t.labels !== undefined || t.matchExpressions !== undefined;
  if (ssh.device !== undefined && t.device !== undefined) {
    problems.add(at('ssh', 'device'), 'the device is named twice (ssh.device and target.device); keep one');
  }
  const named = ssh.device !== undefined || t.device !== undefined;
  if (inline && (named || selector)) {
    problems.add(at('ssh', 'host'), 'an ssh step drives a registered device (ssh.device, target.device or target.labels) or an inline ssh.host, not both');
  } else if (named && selector) {
    problems.add(at('target'), 'a named device and a label selector cannot be combined: drop target.labels/matchExpressions, or the device name');
  } else if (!inline && !named && !selector) {
    problems.add(
      at('ssh'),
      'an ssh step needs a device: ssh.device: NAME (see `drover device list`), target.labels to select registered devices, or an inline ssh.host with user and credential',
    );
  }
  if (inline) {
    for (const f of ['user', 'credential'] as const) {
      if (ssh[f] === undefined) problems.add(at('ssh'), `an inline ssh.host needs ssh.${f} (or register the device with \`drover device add\` and use ssh.device)`);
    }
  } else {
    for (const f of ['port', 'user', 'credential', 'network'] as const) {
      if (ssh[f] !== undefined) {
        problems.add(at('ssh', f), `ssh.${f} is only for an inline ssh.host; a registered device's ${f} comes from the inventory (change it with \`drover device add NAME --replace ...\`)`);
      }
    }
  }
  if (t.agent !== undefined) {
    problems.add(at('target', 'agent'), "target.agent does not apply to ssh steps: they run on a proxy agent for the device's network (an agent labelled proxy=<network>)");
  }
  if (t.strategy === 'all' && !selector) {
    problems.add(at('target', 'strategy'), 'strategy: all fans an ssh step out over the devices target.labels selects; with one device there is nothing to fan out');
  }
  for (const f of ['errorPattern', 'prompt'] as const) {
    if (typeof ssh[f] === 'string' && ssh[f] !== '') checkedPattern(ssh[f], `ssh.${f}`, at('ssh', f), problems);
  }
  if (Array.isArray(ssh.commands)) {
    const names = new Map<string, number>();
    ssh.commands.forEach((c: unknown, i: number) => {
      const text = isObject(c) ? c.command : c;
      if (typeof text === 'string' && /[\r\n]/.test(text)) {
        problems.add(at('ssh', 'commands', i), 'a command may not contain a line break: give each command its own list item');
      }
      const name = isObject(c) && typeof c.name === 'string' ? c.name : `out_${i}`;
      const first = names.get(name);
      if (first !== undefined) problems.add(at('ssh', 'commands', i), `output name "${name}" is already used by ssh.commands[${first}]; output names must be unique`);
      else names.set(name, i);
    });
  }
}
