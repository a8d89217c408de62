import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { verifyChain, type ChainHead } from '../../../common/audit-chain.js';
import type { AuditVerification } from '../../audit.js';
import { FileNotFoundError } from '../../errors.js';
import { caOption, outputOption, printJson, serverOption, tokenOption, withClient } from '../context.js';
import { formatClock } from '../format.js';
import { examples } from '../help.js';
import { listOutputOption, printList } from '../output.js';
import { durationMs, positiveInt } from '../options.js';
import { renderTable } from '../table.js';

interface ListFlags {
  since?: number;
  actor?: string;
  action?: string;
  limit?: number;
}

/** Verifies a log file on this machine: its chain, and its tail against `audit.head` beside it. */
function verifyFile(file: string): AuditVerification {
  if (!existsSync(file)) throw new FileNotFoundError(`no audit log at ${file}`, { hint: 'the log is <data-dir>/audit.log on the control plane host' });
  const headFile = join(dirname(file), 'audit.head');
  let head: ChainHead | undefined;
  try {
    head = existsSync(headFile) ? (JSON.parse(readFileSync(headFile, 'utf8')) as ChainHead) : undefined;
  } catch {
    head = undefined;
  }
  const res = verifyChain(readFileSync(file, 'utf8'), head);
  return { ok: res.problems.length === 0, records: res.records, problems: res.problems, file };
}

/** `drover audit`: who did what; `drover audit verify`: is the log whole. */
export function register(program: Command): void {
  const audit = program
    .command('audit')
    .summary('the audit log: who did what, when, from where; verify its chain')
    .description(
      'Show the control plane\'s audit log: every mutating API call and enrollment, every refused call, every approval, revocation and secret read, with who (token id or agent), from where and the result. ' +
        'Each record carries the SHA-256 of the one before it: `drover audit verify` finds an edited or deleted record. Needs the admin role.',
    )
    .option('--since <duration>', 'only records newer than this, e.g. 24h or 7d', durationMs)
    .option('--actor <id>', 'only records of this token id or agent name')
    .option('--action <prefix>', 'only actions starting with this, e.g. RunService/ or secret.')
    .option('--limit <n>', 'the most recent n records (default 1000)', positiveInt)
    .addOption(listOutputOption())
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caOption())
    .addHelpText('after', examples('drover audit --since 24h', 'drover audit --actor 3f2a9c1d0b7e -o json', 'drover audit --action secret.', 'drover audit verify'))
    .action(async (flags: ListFlags, cmd: Command) => {
      const records = await withClient(cmd, (client) =>
        client.audit.list({ since: flags.since ? new Date(Date.now() - flags.since) : undefined, actor: flags.actor, action: flags.action, limit: flags.limit }),
      );
      printList(cmd, records, () =>
        records.length
          ? renderTable(
              ['SEQ', 'TIME', 'ACTOR', 'ACTION', 'TARGET', 'FROM', 'RESULT'],
              records.map((r) => [
                r.seq,
                `${r.time.toISOString().slice(0, 10)} ${formatClock(r.time.getTime())}`,
                r.actor ? `${r.actorKind}:${r.actor}` : r.actorKind,
                r.action,
                [r.target, ...Object.entries(r.detail).map(([k, v]) => `${k}=${v}`)].filter(Boolean).join(' ') || '-',
                r.from || '-',
                r.result,
              ]),
            )
          : 'no audit records match\n',
      );
    });
  audit
    .command('verify')
    .summary('check every link of the audit log\'s hash chain')
    .description('Re-read the whole audit log and check that every record chains to the one before it and that none is missing at the end. Names each line that was edited or deleted; exits 1 if any. With --file, checks a log file on this machine (no server needed).')
    .option('--file <path>', 'verify this audit.log here instead of asking the control plane')
    .addOption(outputOption())
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caOption())
    .addHelpText('after', examples('drover audit verify', 'drover audit verify --file /var/lib/drover/audit.log'))
    .action(async (opts: { file?: string; output: string }, cmd: Command) => {
      const res = opts.file ? verifyFile(opts.file) : await withClient(cmd, (client) => client.audit.verify());
      process.exitCode = res.ok ? 0 : 1;
      if (opts.output === 'json') return printJson(res);
      if (res.ok) return void process.stdout.write(`audit log intact: ${res.records} records, every link checked (${res.file})\n`);
      process.stdout.write(`audit log BROKEN (${res.file}, ${res.records} records):\n${res.problems.map((p) => `  line ${p.line}: ${p.message}\n`).join('')}`);
    });
}
