/** NATS subjects users may choose: those of triggers and of event publishers' credentials (docs/triggers.md#nats-triggers). */
/**
 * Why `subject` cannot be a trigger's subject (or what an event publisher
 * may publish on), or undefined when it can: a valid NATS subject whose
 * first token is literal and not one of the control plane's own (drover,
 * _INBOX, $...), so no pattern reaches the agents' link.
 */
export function triggerSubjectProblem(subject: string): string | undefined {
  if (subject.length > 255) return `the subject is ${subject.length} characters; at most 255`;
  if (/[\s\0]/.test(subject)) return `"${subject}" holds whitespace; NATS subjects are tokens separated by dots, like alarms.rack4`;
  const tokens = subject.split('.');
  if (tokens.some((t) => t === '')) return `"${subject}" has an empty token (two dots in a row, or a dot at an end)`;
  const bad = tokens.findIndex((t, i) => (t.includes('>') && (t !== '>' || i !== tokens.length - 1)) || (t.includes('*') && t !== '*'));
  if (bad >= 0) return `"${subject}": the wildcards are whole tokens, * for one token and > (last only) for the rest, as in alarms.*.power or alarms.>`;
  const first = tokens[0];
  if (first === '*' || first === '>') return `"${subject}" starts with a wildcard, which would also match the control plane's own subjects (drover.v1.agent.>); start with a literal token, like alarms.>`;
  if (first === 'drover' || first === '_INBOX' || first.startsWith('$')) return `"${subject}" is under ${first}., which belongs to drover and NATS themselves; choose another first token, like alarms.>`;
  return undefined;
}
