import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { FileNotFoundError, InvalidInputError } from '../../../errors.js';
import { caOption, outputOption, printJson, serverOption, tokenOption, withClient } from '../../context.js';
import { examples } from '../../help.js';

/** Reads all of stdin (the value is never a flag: flags end up in shell history and `ps`). */
async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('value (end with Ctrl-D): ');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** `drover secret set NAME`: the value from stdin or --from-file, stored encrypted. */
export function register(group: Command): void {
  group
    .command('set')
    .summary('store a secret (the value from stdin or --from-file)')
    .description(
      'Create or replace a secret. The value is read from stdin (one trailing newline is dropped) or from --from-file (taken byte for byte), never from a flag. ' +
        'It is stored encrypted (AES-256-GCM) and no call returns it; steps use it as `secrets: [NAME]` (an environment variable) or `${{ secrets.NAME }}`, and an ssh credential of the same name uses it. Needs the admin role.',
    )
    .argument('<name>', 'letters, digits, ".", "-" and "_" (at most 63)')
    .option('--from-file <file>', 'read the value from this file (e.g. a private key)')
    .addOption(outputOption())
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caOption())
    .addHelpText('after', examples('printf %s "$DB_PASSWORD" | drover secret set DB_PASSWORD', 'drover secret set lab-admin --from-file ~/.ssh/lab_ed25519'))
    .action(async (name: string, opts: { fromFile?: string; output: string }, cmd: Command) => {
      let value: string;
      if (opts.fromFile) {
        try {
          value = readFileSync(opts.fromFile, 'utf8');
        } catch (err) {
          throw new FileNotFoundError(`cannot read --from-file ${opts.fromFile}: ${(err as Error).message}`, { hint: 'give the path of a readable file' });
        }
      } else {
        value = (await readStdin()).replace(/\r?\n$/, '');
      }
      if (!value) throw new InvalidInputError(`no value for secret "${name}"`, { hint: `pipe it in: printf %s "$VALUE" | drover secret set ${name}, or give --from-file FILE` });
      const info = await withClient(cmd, (client) => client.secrets.set(name, value));
      if (opts.output === 'json') return printJson(info);
      process.stdout.write(`secret ${info.name} stored (version ${info.version})\n`);
    });
}
