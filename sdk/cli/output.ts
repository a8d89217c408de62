/**
 * `-o table|wide|json|yaml` of listings: which format a command prints in
 * (flag > DROVER_OUTPUT > the config file's `output` > table), and printing
 * a value in it. Tables get a View (wide or not, colour or not, the clock);
 * json and yaml get the raw values with times as ISO-8601 strings. The YAML
 * writer is loaded (prepareOutput, before the command's action) only when
 * the command prints YAML.
 */
import { Option, type Command } from 'commander';
import { InvalidInputError } from '../errors.js';
import { useColour } from './colour.js';
import { loadConfig, OUTPUT_FORMATS, type OutputFormat } from './config.js';

export { OUTPUT_FORMATS, type OutputFormat } from './config.js';

/** How a table is drawn. */
export interface View {
  /** `-o wide`: the extra columns. */
  wide: boolean;
  /** Escape codes allowed (colour.ts useColour). */
  colour: boolean;
  /** The clock "2m ago" counts from. */
  now: number;
}

/** The default View: narrow, no colour, now. */
export function plainView(now = Date.now()): View {
  return { wide: false, colour: false, now };
}

/** `-o, --output table|wide|json|yaml`, for every command that prints a list. */
export function listOutputOption(): Option {
  return new Option('-o, --output <format>', 'output format (default: $DROVER_OUTPUT, the config file\'s output, or table)').choices(OUTPUT_FORMATS);
}

/** The format `cmd` prints in. */
export function outputFormat(cmd: Command, env: NodeJS.ProcessEnv = process.env): OutputFormat {
  const flag = cmd.opts<{ output?: OutputFormat }>().output;
  if (flag) return flag;
  const fromEnv = env.DROVER_OUTPUT;
  if (fromEnv) {
    if (!(OUTPUT_FORMATS as readonly string[]).includes(fromEnv)) {
      throw new InvalidInputError(`DROVER_OUTPUT="${fromEnv}" is not an output format`, { hint: `use one of ${OUTPUT_FORMATS.join(', ')} (as for -o, --output)` });
    }
    return fromEnv as OutputFormat;
  }
  return loadConfig(env).output ?? 'table';
}

/** The View of a table printed by `cmd` now. */
export function viewFor(format: OutputFormat, env: NodeJS.ProcessEnv = process.env, stream: { isTTY?: boolean } = process.stdout): View {
  return { wide: format === 'wide', colour: useColour(format, env, stream), now: Date.now() };
}

/** Keys whose numbers are times in ms since the epoch (SDK types); 0 means never. */
const TIME_KEYS = new Set(['createdAt', 'startedAt', 'endedAt', 'lastSeen', 'connectedSince', 'at']);

/** `value` as json and yaml show it: times (Dates, and the SDK's ms numbers) as ISO-8601 strings, null for never. */
export function machineValue(value: unknown, key = ''): unknown {
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'number' && TIME_KEYS.has(key)) return value > 0 ? new Date(value).toISOString() : null;
  if (Array.isArray(value)) return value.map((v) => machineValue(v));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, machineValue(v, k)]));
  return value;
}

let yaml: typeof import('yaml') | undefined;

/** Loads the YAML writer when `cmd` will print YAML (a format that is not valid is left for the command to report). */
export async function prepareOutput(cmd: Command, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (!cmd.options.some((o) => o.attributeName() === 'output')) return;
  let format: string;
  try {
    format = outputFormat(cmd, env);
  } catch {
    return;
  }
  if (format === 'yaml') await loadYaml();
}

/** `value` in a machine format (for yaml, after prepareOutput or loadYaml). */
export function formatMachine(format: 'json' | 'yaml', value: unknown): string {
  const plain = machineValue(value);
  if (format === 'json') return JSON.stringify(plain, null, 2) + '\n';
  if (!yaml) throw new Error('internal error: YAML output before prepareOutput() loaded the YAML writer');
  return yaml.stringify(plain, { lineWidth: 0 });
}

/** The YAML package, loaded on first use (prepareOutput does it for commands). */
export async function loadYaml(): Promise<typeof import('yaml')> {
  // A CommonJS package: the CLI bundle's import() gives its exports as `default` only.
  const loaded = await import('yaml');
  yaml ??= (loaded.default ?? loaded) as typeof loaded;
  return yaml;
}

/** `value` in `cmd`'s format: `table(view)` for table and wide. */
export function captureList(cmd: Command, value: unknown, table: (view: View) => string): string {
  const format = outputFormat(cmd);
  return format === 'json' || format === 'yaml' ? formatMachine(format, value) : table(viewFor(format));
}

/** Prints `value` in `cmd`'s format: `table(view)` for table and wide. */
export function printList(cmd: Command, value: unknown, table: (view: View) => string): void {
  process.stdout.write(captureList(cmd, value, table));
}
