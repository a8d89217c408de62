import { spawn } from 'node:child_process';
import { entryPath, type Entry } from './entries.js';

const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/**
 * Runs an entry in a child node process with `args` unchanged and inherited
 * stdio, forwarding SIGINT/SIGTERM. Resolves with the code to exit with.
 */
export function runEntry(entry: Entry, args: readonly string[]): Promise<number> {
  const child = spawn(process.execPath, [entryPath(entry), ...args], { stdio: 'inherit' });
  const forward = (signal: NodeJS.Signals): void => void child.kill(signal);
  for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      for (const s of FORWARDED_SIGNALS) process.off(s, forward);
      resolve(code ?? (signal === 'SIGINT' ? 130 : signal === 'SIGTERM' ? 143 : 1));
    });
  });
}
