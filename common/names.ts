/**
 * The syntax of agent names and labels, which every part checks: the agent
 * at start, the installer before it installs, the control plane at
 * enrollment, in tokens, devices and selectors. One definition, so what one
 * part accepts no other refuses. The wire's byte bounds are in proto/limits.ts.
 */

/** An agent name: letters, digits, ".", "-", "_", at most 63, starting with a letter or digit. */
export const AGENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** A label key: as an agent name, and "/" too (`example.com/rack`). */
export const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/;

/** A label value: letters, digits, ".", "-", "_", at most 63; may be empty. */
export const LABEL_VALUE = /^[A-Za-z0-9._-]{0,63}$/;
