/**
 * The agent link over NATS, as far as both ends must agree (docs/nats.md):
 * subject names and the headers that carry the session. The payloads are the
 * same protobuf messages as over gRPC (AgentMessage up, ServerMessage down).
 *
 * Core NATS has no per-connection stream, so a session is spelled out in
 * headers: the agent picks a session id per Hello and sends it on every
 * message; the control plane echoes it on every reply. Each side numbers the
 * messages it sends in a session (1, 2, 3, ...) so the receiver notices a
 * message that core NATS (at-most-once) dropped and ends the session; the
 * delivery rules (replay after Welcome, re-sent slices after Hello) then
 * recover what was lost. Hello carries the agent's down subject as its reply
 * subject, so with no control plane subscribed the NATS server answers
 * "503 no responders" there at once.
 */

/** Versioned with the contract; fleets that must not see each other use separate NATS accounts. */
export const NATS_SUBJECT_PREFIX = 'drover.v1.agent';

/** What the control plane subscribes to; the last token tells direction (agents' names may contain dots). */
export const NATS_AGENT_WILDCARD = `${NATS_SUBJECT_PREFIX}.>`;

/** Agent -> control plane: AgentMessage. */
export function upSubject(agent: string): string {
  return `${NATS_SUBJECT_PREFIX}.${agent}.up`;
}

/** Control plane -> agent: ServerMessage. */
export function downSubject(agent: string): string {
  return `${NATS_SUBJECT_PREFIX}.${agent}.down`;
}

/** The agent name of an up subject, or undefined when `subject` is not one. */
export function agentOfUpSubject(subject: string): string | undefined {
  const head = `${NATS_SUBJECT_PREFIX}.`;
  if (!subject.startsWith(head) || !subject.endsWith('.up')) return undefined;
  const name = subject.slice(head.length, -'.up'.length);
  return name || undefined;
}

/** Header names (NATS headers are MIME-like; both ends use exactly these spellings). */
export const NATS_HEADER = {
  /** Session id chosen by the agent for one Hello; echoed on every reply. */
  session: 'Drover-Session',
  /** 1, 2, 3, ... per session and direction. */
  seq: 'Drover-Seq',
  /** On an empty down message: the control plane ended the session; the value is the reason. */
  close: 'Drover-Close',
} as const;

/**
 * Largest AgentMessage the control plane accepts over NATS: the same bound as
 * grpc-js's default receive limit, so both transports refuse the same sizes.
 * The NATS server's max_payload (1 MiB by default) usually bites first.
 */
export const MAX_AGENT_MESSAGE_BYTES = 4 * 1024 * 1024;
