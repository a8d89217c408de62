/**
 * Colour for CLI tables: plain SGR escape codes, used only when they help.
 * Decided once per command (useColour), then passed to renderers in their
 * View so they stay pure and testable without a terminal.
 */

/** SGR open and close codes. Each closes only its own attribute, so colours nest inside a table cell. */
const CODES = {
  red: [31, 39],
  green: [32, 39],
  blue: [34, 39],
  yellow: [33, 39],
  dim: [2, 22],
  bold: [1, 22],
} as const;

export type Colour = keyof typeof CODES;

/** `text` in `colour` when `on`; unchanged otherwise. */
export function paint(colour: Colour | undefined, text: string, on: boolean): string {
  if (!on || !colour || !text) return text;
  const [open, close] = CODES[colour];
  return `\u001b[${open}m${text}\u001b[${close}m`;
}

/** The colour of a run, step, attempt or agent state word: failures stand out, what is moving is blue. */
export function stateColour(state: string): Colour | undefined {
  switch (state) {
    case 'failed':
    case 'lost':
      return 'red';
    case 'succeeded':
    case 'connected':
      return 'green';
    case 'running':
      return 'blue';
    case 'pending':
    case 'skipped':
    case 'disconnected':
      return 'dim';
    case 'draining':
    case 'waiting':
    case 'cancelled':
      return 'yellow';
    default:
      return undefined;
  }
}

/** A state word in its colour. */
export function paintState(state: string, on: boolean): string {
  return paint(stateColour(state), state, on);
}

/**
 * Whether a command colours its output: never with NO_COLOR set (whatever
 * its value, https://no-color.org) or a machine format (json, yaml); always
 * with FORCE_COLOR set to anything but '' or '0'; otherwise when stdout is a
 * terminal.
 */
export function useColour(format: string, env: NodeJS.ProcessEnv = process.env, stream: { isTTY?: boolean } = process.stdout): boolean {
  if (env.NO_COLOR !== undefined) return false;
  if (format === 'json' || format === 'yaml') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '' && env.FORCE_COLOR !== '0') return true;
  return !!stream.isTTY;
}

/** Text without SGR escape codes (for measuring and for tests). */
export function stripColour(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*m/g, '');
}
