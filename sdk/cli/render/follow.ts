/**
 * Live rendering of a run, shared by `drover run --follow` and
 * `drover dev --launch`: one line per step state change, log lines prefixed
 * with their step, and a summary once the run ends.
 */
import type { DroverClient } from '../../client.js';
import type { LogLine, Run, RunEvent, Step } from '../../types.js';
import { formatClock, formatDuration, formatSpan } from '../format.js';
import { stepMessages, stepsTable } from './runs.js';
import { agentCell, hasExitCode } from './step-cells.js';

/** Where follow output goes; stderr log lines go to `err`. */
export interface FollowOutput {
  out(text: string): void;
  err(text: string): void;
}

/** Writes to the process's stdout and stderr. */
export const processOutput: FollowOutput = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};

const STATUS_WIDTH = 'succeeded'.length;

/** Turns run events into progress and log lines. Pure apart from `output`. */
export class FollowPrinter {
  private readonly seen = new Map<string, string>();
  /** The run's steps as last heard, for a group's instances. */
  private readonly steps = new Map<string, Step>();
  private idWidth = 0;

  constructor(
    private readonly output: FollowOutput,
    private readonly now: () => number = Date.now,
  ) {}

  /** Renders one event. */
  handle(event: RunEvent): void {
    if (event.type === 'run') {
      for (const step of event.run.steps) {
        this.idWidth = Math.max(this.idWidth, step.id.length);
        this.steps.set(step.id, step);
      }
      for (const step of event.run.steps) this.step(step);
    } else if (event.type === 'step') {
      this.step(event.step);
    } else {
      this.log(event.line);
    }
  }

  private step(step: Step): void {
    this.steps.set(step.id, step);
    // Waiting for needs, or for an agent that is up to start it, is the ordinary course of a run (`drover status`
    // lists those too); a hold-up (an agent gone or draining, a queue, a maxParallel slot) is what a user waits on.
    if (step.status === 'pending' && !(step.waiting && step.blocked)) return;
    const key = `${step.id}\0${step.agent}`;
    const state = `${step.status}/${step.attempt}/${step.waiting}`;
    if (this.seen.get(key) === state) return;
    this.seen.set(key, state);
    this.idWidth = Math.max(this.idWidth, step.id.length);
    const waiting = step.status === 'pending';
    // A reused step ended in the run it was copied from: it shows when this run took it over.
    const at = waiting || step.reusedFrom ? this.now() : (step.status === 'running' ? step.startedAt : step.endedAt) || this.now();
    const head = `[${formatClock(at)}] ${step.id.padEnd(this.idWidth)}  ${(waiting ? 'waiting' : step.status).padEnd(STATUS_WIDTH)}  `;
    this.output.out(head + describe(step, [...this.steps.values()]) + '\n');
  }

  private log(line: LogLine): void {
    const prefixed = `${line.stepId.padEnd(this.idWidth)} | ${line.text}\n`;
    if (line.stream === 'stderr') this.output.err(prefixed);
    else this.output.out(prefixed);
  }
}

/** What follows a step's status: where it runs, how it ended, or why it waits. */
function describe(step: Step, steps: readonly Step[]): string {
  const retry = step.attempt > 1 ? ` (attempt ${step.attempt})` : '';
  const took = step.startedAt && step.endedAt ? ` in ${formatDuration(step.endedAt - step.startedAt)}` : '';
  const why = step.message ? `: ${step.message}` : '';
  const where = agentCell(step, steps);
  if (step.reusedFrom) return `reused from ${step.reusedFrom} (not run again)`;
  switch (step.status) {
    case 'pending':
      return step.waiting.replace(/^waiting /, '');
    case 'running':
      // An approval gate runs on no agent: what it waits for is the news.
      if (step.kind === 'approval') return step.waiting || 'waiting for a decision';
      return `${step.kind === 'group' ? where : `on ${where}`}${retry}${step.waiting ? `; ${step.waiting}` : ''}`;
    case 'succeeded':
    case 'failed': {
      const end = step.kind === 'group' ? where.replace(/^on /, '') : hasExitCode(step) ? `exit ${step.exitCode}` : 'never ran';
      return `${end}${took}${retry}${why}`;
    }
    default:
      return why.slice(2);
  }
}

/** The closing block: result line, steps table and failure messages. */
export function runSummary(run: Run, nowMs: number = Date.now()): string {
  const message = run.message ? ` (${run.message})` : '';
  return (
    `\nrun ${run.id} ${run.status} in ${formatSpan(run.startedAt || run.createdAt, run.endedAt, nowMs)}${message}\n\n` +
    stepsTable(run.steps, nowMs) +
    stepMessages(run.steps)
  );
}

/**
 * Follows a run until it ends, printing progress and logs, then the summary.
 * Resolves with the final run.
 */
export async function followRun(client: DroverClient, runId: string, output: FollowOutput = processOutput): Promise<Run> {
  const printer = new FollowPrinter(output);
  for await (const event of client.runs.watch(runId, { logs: true })) printer.handle(event);
  const run = await client.runs.get(runId);
  output.out(runSummary(run));
  return run;
}
