import type { Command } from 'commander';
import { outputOption, printJson } from '../../context.js';
import { examples } from '../../help.js';
import { renderTable } from '../../table.js';

/** `drover conformance agent -- COMMAND…`: an agent checked rule by rule against a scripted control plane; exit 1 when a check fails. */
export function register(group: Command): void {
  group
    .command('agent')
    .summary('check an agent against docs/protocol.md, with a scripted control plane')
    .description(
      'Start COMMAND (an agent) against a scripted control plane on 127.0.0.1 and check the rules of docs/protocol.md one by one: Hello, heartbeats, attempt ids and numbering, seqs, logs and outputs, retry, skip, timeout, the resend after a dropped link, acks, cancel of a process group, RunFinished. In COMMAND, {addr} becomes the scripted control plane\'s address and {dir} a fresh state dir. Without --signed the agent links in plaintext (drover agent: --insecure) and the signing rule is skipped; with --signed it enrolls with {token} (an enrollment token of a throwaway CA), every control message is signed, and an unsigned Assign must be refused. Prints a pass/fail row per rule; exits 1 when one fails.',
    )
    .argument('<command...>', 'the agent command, after --')
    .option('--signed', 'enroll the agent with {token} over TLS and sign control messages; check that an unsigned one is refused')
    .addOption(outputOption())
    .addHelpText(
      'after',
      examples(
        'drover conformance agent -- drover agent --insecure --server {addr} --name kit --state-dir {dir}',
        'drover conformance agent --signed -- drover agent --server {addr} --token {token} --name kit --state-dir {dir}',
      ),
    )
    .action(async (command: string[], opts: { output: string; signed?: boolean }) => {
      const { checkAgent } = await import('../../../conformance/agent-checks.js');
      const results = await checkAgent(command, { signed: opts.signed });
      const failed = results.filter((r) => !r.ok).length;
      process.exitCode = failed ? 1 : 0;
      if (opts.output === 'json') return printJson(results);
      const mark = (r: (typeof results)[number]) => (r.skipped ? 'skip' : r.ok ? 'pass' : 'FAIL');
      process.stdout.write(renderTable(['result', 'rule', 'check'], results.map((r) => [mark(r), r.rule, r.ok && !r.skipped ? r.check : `${r.check}: ${r.detail}`])));
      process.stdout.write(failed ? `\n${failed} of ${results.length} checks failed\n` : `\nno check failed (${results.filter((r) => r.skipped).length} skipped)\n`);
    });
}
