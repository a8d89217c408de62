import type { Command } from 'commander';
import { caOption, clientOptions, outputOption, printJson, serverOption, tokenOption } from '../../context.js';
import { examples } from '../../help.js';
import { renderTable } from '../../table.js';

/** `drover conformance server [ADDR]`: a control plane checked rule by rule by a scripted agent; exit 1 when a check fails. */
export function register(group: Command): void {
  group
    .command('server')
    .summary('check a control plane against docs/protocol.md, driving it as a scripted agent')
    .description(
      'Enroll a scripted agent at the control plane (an enrollment token is made with your admin token), link it over mTLS, and check the rules of docs/protocol.md one by one: Hello and Welcome, heartbeats, signed Assign, acks, log lines, RunFinished, duplicates, and the refusals of a seq gap, an event out of order, a bad attempt number or id, and a replaced identity. Prints a pass/fail row per rule; exits 1 when one fails. It leaves an enrolled agent conformance-<hex> and two runs of the workflow drover-conformance behind.',
    )
    .argument('[addr]', 'the control plane (host:port); default: --server, DROVER_ADDR')
    .addOption(outputOption())
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caOption())
    .addHelpText('after', examples('drover conformance server 127.0.0.1:7400 --ca /var/lib/drover/ca.pem'))
    .action(async (addr: string | undefined, opts: { output: string }, cmd: Command) => {
      const { checkServer } = await import('../../../conformance/server-checks.js');
      const results = await checkServer({ ...clientOptions(cmd), ...(addr && { address: addr }) });
      const failed = results.filter((r) => !r.ok).length;
      process.exitCode = failed ? 1 : 0;
      if (opts.output === 'json') return printJson(results);
      process.stdout.write(renderTable(['result', 'rule', 'check'], results.map((r) => [r.ok ? 'pass' : 'FAIL', r.rule, r.ok ? r.check : `${r.check}: ${r.detail}`])));
      process.stdout.write(failed ? `\n${failed} of ${results.length} checks failed\n` : `\nall ${results.length} checks passed\n`);
    });
}
