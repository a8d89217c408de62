#!/usr/bin/env node
import { CommanderError } from 'commander';
import { buildProgram } from './program.js';
import { exitCodeFor, formatError } from './report.js';
import { quietIpServerNameWarning } from '../../common/tls.js';

quietIpServerNameWarning();

// `drover runs | head` closes stdout early; that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

try {
  await (await buildProgram()).parseAsync(process.argv);
} catch (err) {
  // Commander has already printed its own usage errors and help.
  if (!(err instanceof CommanderError)) process.stderr.write(formatError(err));
  process.exitCode = exitCodeFor(err);
}
