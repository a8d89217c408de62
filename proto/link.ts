/**
 * Limits of the agent link that both ends must agree on (DESIGN.md §5).
 */

/**
 * Sequenced messages an agent may have sent and not yet had acknowledged.
 * The agent's journal never exceeds it; the control plane rejects (never
 * acks) a seq beyond its acknowledged seq plus this window, so one forged or
 * corrupt seq cannot make it drop the agent's later messages as duplicates.
 */
export const MAX_UNACKED_MESSAGES = 1024;
