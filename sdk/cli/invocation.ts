/**
 * The command a user types to run this CLI, for every hint that names one
 * ("see its progress with: drover status r-…"). `drover` only when a
 * `drover` on the user's PATH is this very program; `npx drover` when npx
 * (npm exec) started it, or when nothing named drover on PATH is it (a
 * local install, a checkout run with node): that is what works there.
 */
import { realpathSync } from 'node:fs';
import { delimiter, join } from 'node:path';

function real(path: string | undefined): string {
  if (!path) return '';
  try {
    return realpathSync(path);
  } catch {
    return '';
  }
}

/** `drover` or `npx drover`, from how this process was started (npm's environment, argv[1]) and the user's PATH. */
export function cliCommand(env: NodeJS.ProcessEnv = process.env, script: string | undefined = process.argv[1]): string {
  if (env.npm_command === 'exec') return 'npx drover';
  const self = real(script);
  if (!self) return 'npx drover';
  // npm and npx put node_modules/.bin on PATH for the process they start; the user's shell does not have it.
  const dirs = (env.PATH ?? '').split(delimiter).filter((d) => d && !/node_modules[\\/]\.bin[\\/]?$/.test(d));
  return dirs.some((d) => real(join(d, 'drover')) === self) ? 'drover' : 'npx drover';
}

let memo: string | undefined;

/** cliCommand() for this process, worked out once. */
export function cli(): string {
  return (memo ??= cliCommand());
}

/** `text` with each command in backticks, `drover …`, written as the user can type it (cli()). */
export function withCliCommand(text: string, command: string = cli()): string {
  return command === 'drover' ? text : text.replace(/`drover(?= |`)/g, `\`${command}`);
}
