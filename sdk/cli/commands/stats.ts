import { InvalidArgumentError, Option, type Command } from 'commander';
import { parseDuration } from '../../../common/duration.js';
import { caOption, printJson, serverOption, tokenOption, withClient } from '../context.js';
import { examples } from '../help.js';
import { loadYaml } from '../output.js';
import { statsDocument, statsTable } from '../render/stats.js';

/** `--since`: a duration of at least a second, up to 366 days (what the control plane accepts). */
function since(value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined || ms < 1000 || ms > 366 * 86_400_000) throw new InvalidArgumentError('expected a duration from 1s to 366d, such as 24h, 30m or 7d (drover stats --since 24h)');
  return ms;
}

/** `drover stats`: the four orchestration metrics, per workflow and overall. */
export function register(program: Command): void {
  program
    .command('stats')
    .summary('completion rate, cycle time, error rates and resource use, per workflow')
    .description(
      'Show the four orchestration metrics over a window, per workflow and for all runs together, computed by the control plane from the runs it keeps (so a restart changes nothing): ' +
        'completion rate (succeeded / ended), cycle time from submit to end (p50, p95, max), error rates (failed runs / ended, failed or lost step attempts / attempts), ' +
        "and resource use (the steps' CPU-seconds and peak memory; the fleet's mean CPU and memory while the runs ran). A run counts when it ended inside the window. " +
        'History reaches back only as far as the runs the server keeps (drover server --max-runs). Definitions: docs/metrics.md.',
    )
    .option('--workflow <name>', 'only this workflow')
    .option('--since <duration>', 'the window, back from now: 30m, 24h, 7d (default 24h)', since)
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json', 'yaml']).default('table'))
    .addOption(serverOption()).addOption(tokenOption()).addOption(caOption())
    .addHelpText(
      'after',
      examples(
        'drover stats                                   # the last 24 h, every workflow',
        'drover stats --since 7d --workflow onboard-employee',
        'drover stats --since 1h -o json | jq .overall.completionRate',
      ),
    )
    .action(async (opts: { workflow?: string; since?: number; output: string }, cmd: Command) => {
      const stats = await withClient(cmd, (client) => client.stats.get({ workflow: opts.workflow, since: opts.since }));
      if (opts.output === 'json') printJson(statsDocument(stats));
      else if (opts.output === 'yaml') process.stdout.write((await loadYaml()).stringify(statsDocument(stats)));
      else process.stdout.write(statsTable(stats));
    });
}
