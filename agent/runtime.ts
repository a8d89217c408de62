/**
 * Runs this agent's slices of plans: the driver of the slice machine
 * (slice/machine.ts, which decides every step's course). It feeds the
 * machine what happened (an Assign, a Release, a Cancel, an attempt's end, a
 * timer) and performs the effects it returns over the attempt ledger, the
 * executors, the attempts' output files and the journal. Keeps running while
 * the link is down; everything produced goes through the journal.
 *
 * Every attempt id is recorded in the ledger before it runs, and never
 * started twice (the machine reads the ledger before it starts one).
 *
 * Process steps (run, command, script) run under a supervisor
 * (executor/supervise.ts) and do not depend on this process: after a restart
 * the agent finds them again (detached.ts), and when the control plane sends the
 * step again it re-attaches to the attempt, streams its output from where the
 * last process stopped and reports its real end. Built-in steps (sleep, http,
 * file, ssh) run inside the agent and end with it: they are reported lost.
 *
 * Secret values come with the steps that use them (Assign.secrets), stay in
 * memory only, and are masked (executor/mask.ts) in everything a step
 * produces before it reaches the journal, the ledger or the link.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DetachedAttempts } from './detached.js';
import { runFile, runHttp, runSleep } from './executor/builtin.js';
import type { EgressPolicy } from './executor/egress.js';
import { LineSplitter } from './executor/lines.js';
import { Masker } from './executor/mask.js';
import { readOutputs } from './executor/outputs.js';
import { AttemptOutput, type Offsets } from './executor/output-tail.js';
import { ProcStats } from './executor/proc-stats.js';
import type { DevicePool } from './executor/ssh/pool.js';
import { runSsh } from './executor/ssh/step.js';
import type { RunningShell, ShellResult } from './executor/shell.js';
import { attemptPaths, closeOutputs, openOutputs, removeAttempt, startSupervised, type AttemptPaths, type Supervised } from './executor/supervise.js';
import type { Logger } from './log.js';
import type { Body } from './journal.js';
import type { AttemptEntry, Ledger } from './ledger.js';
import { newSlicesState, runningAttempts, sliceStep, type Effect, type Outcome, type SliceEvent, type SliceInputs, type SliceState, type SlicesState, type StepState } from './slice/machine.js';
import type { Assignment, Cancel, Release, Stream } from './slice/types.js';
import { renderTemplate } from './template.js';
import { logChunkOut, stepEventOut } from './wire.js';

type StartEffect = Extract<Effect, { type: 'start' }>;
type ReattachEffect = Extract<Effect, { type: 'reattach' }>;

/** Kinds run as a process under the supervisor. */
const PROCESS_KINDS = new Set(['run', 'command', 'script']);
/**
 * Attempt ids one Hello lists as finished, at most: the control plane answers
 * a RunFinished per ended run among them and the ledger forgets those, so a
 * long backlog (an upgraded agent's ledger) is listed over a few reconnects
 * instead of making every Hello big.
 */
const MAX_FINISHED_ATTEMPTS = 1024;
/** Errors of a full or failing disk: an attempt that cannot start for one of these is postponed (the machine's POSTPONE_MS). */
const DISK_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS']);

export interface RuntimeOptions {
  agentName: string;
  labels: Record<string, string>;
  /** Steps' working directories, one per run. */
  workDir: string;
  /** Attempts' output, status and offsets files (executor/supervise.ts). */
  attemptsDir: string;
  /** Where file steps may write. */
  fileRoots: string[];
  /** File steps may set setuid, setgid and sticky bits. */
  fileAllowSpecialModes?: boolean;
  /** Where http steps may connect; absent: the default policy. */
  egress?: EgressPolicy;
  /** Attempts started and ended, kept on disk across restarts. */
  ledger: Ledger;
  /** Host facts, visible to expressions as agent.facts. */
  facts: Record<string, unknown>;
  /** Time between SIGTERM and SIGKILL when a step is cancelled or times out. */
  graceMs: number;
  /** SSH sessions to network devices, for ssh steps (absent: this agent runs none). */
  ssh?: DevicePool;
  /** Journals a message; false when it is not on disk (it waits in memory: the disk fails). */
  emit(body: Body): boolean | void;
  log: Logger;
}

export class Runtime {
  private readonly state: SlicesState;
  private readonly stats = new ProcStats();
  /** Attempts executing, by attempt id. */
  private readonly executing = new Map<string, RunningShell>();
  /** Retry and postpone timers, by `run/step`. */
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Each step's masker, made from its secrets when first needed. */
  private readonly maskers = new WeakMap<StepState, Masker>();
  /** Slices whose run work dir exists (made once per slice: it adds up on short steps). */
  private readonly workDirs = new WeakSet<SliceState>();
  /** Attempts found still running (or ended unseen) after a restart, until their step is sent again or cancelled. */
  private readonly detached: DetachedAttempts;
  /** This process's environment minus DROVER_* settings, the base of every step's environment. */
  private baseEnv: Record<string, string> | undefined;
  private readonly ledgerView = (attemptId: string) => this.opts.ledger.get(attemptId);
  private readonly isDetached = (attemptId: string) => this.detached.has(attemptId);

  constructor(private readonly opts: RuntimeOptions) {
    mkdirSync(opts.workDir, { recursive: true });
    mkdirSync(opts.attemptsDir, { recursive: true, mode: 0o700 });
    this.state = newSlicesState({ name: opts.agentName, labels: opts.labels, facts: opts.facts });
    const output = this.output.bind(this);
    this.detached = new DetachedAttempts({ ...opts, stats: this.stats, output });
  }

  get running(): number {
    return this.state.running;
  }

  /** Attempt ids currently executing (for Hello), those found after a restart included. */
  runningAttempts(): string[] {
    return [...this.detached.ids(), ...runningAttempts(this.state)];
  }

  assign(a: Assignment) {
    this.dispatch({ type: 'assigned', assignment: a });
  }

  release(r: Release) {
    this.dispatch({ type: 'released', release: r });
  }

  cancel(c: Cancel) {
    this.detached.settle(c.runId, c.stepId, c.reason);
    this.dispatch({ type: 'cancel', cancel: c });
  }

  /** The control plane says the run ended: its finished slice and its ended attempts in the ledger are forgotten. */
  runFinished(runId: string) {
    this.dispatch({ type: 'runFinished', runId });
    this.opts.ledger.forgetRun(runId);
  }

  /** Ended attempts whose runs this agent has not been told are finished (Hello.finished_attempts), oldest first. */
  finishedAttempts(): string[] {
    return this.opts.ledger.endedIds(MAX_FINISHED_ATTEMPTS);
  }

  /** Feeds the machine one event and performs what it decides, in order. */
  private dispatch(ev: SliceEvent) {
    const inputs: SliceInputs = { now: Date.now(), random: Math.random, ledger: this.ledgerView, detached: this.isDetached };
    for (const e of sliceStep(this.state, ev, inputs).effects) this.perform(e);
  }

  private perform(e: Effect) {
    switch (e.type) {
      case 'start':
        return this.start(e);
      case 'reattach':
        return this.reattach(e);
      case 'stop':
        return this.executing.get(e.attemptId)?.cancel();
      case 'setTimer': {
        const key = `${e.runId}/${e.stepId}`;
        const timer = setTimeout(() => {
          this.timers.delete(key);
          this.dispatch({ type: 'timer', runId: e.runId, stepId: e.stepId, attempt: e.attempt });
        }, Math.max(0, e.atMs - Date.now()));
        this.timers.set(key, timer);
        return;
      }
      case 'clearTimer': {
        const key = `${e.runId}/${e.stepId}`;
        clearTimeout(this.timers.get(key));
        this.timers.delete(key);
        return;
      }
      case 'record':
        return this.opts.ledger.ended(e.attemptId, e.status, e.outputs);
      case 'removeAttempt':
        // $DROVER_OUTPUT may hold a secret in clear; the outputs went through the journal masked.
        return removeAttempt(attemptPaths(this.opts.attemptsDir, e.runId, e.stepId, e.attempt));
      case 'event': {
        const step = this.stepOf(e.runId, e.stepId);
        const masker = step && this.masker(step);
        let fields = e.fields;
        if (masker && !masker.empty) {
          fields = { ...fields, message: masker.text(fields.message ?? '') };
          if (fields.outputs) fields.outputs = masker.values(fields.outputs);
        }
        this.opts.emit(stepEventOut(e.runId, e.stepId, e.attemptId, e.attempt, e.phase, fields));
        return;
      }
      case 'log':
        return this.opts.log[e.level](e.fields, e.msg);
      case 'sliceDone':
        // This agent's part of the run is done: its device sessions close.
        return this.opts.ssh?.endRun(e.runId);
    }
  }

  private stepOf(runId: string, stepId: string): StepState | undefined {
    return this.state.slices.get(runId)?.steps.get(stepId);
  }

  private masker(step: StepState): Masker {
    let m = this.maskers.get(step);
    if (!m) this.maskers.set(step, (m = new Masker([...Object.values(step.secrets), ...Object.values(step.secretParams)])));
    return m;
  }

  /** After a restart: what became of each attempt the last agent process left running (detached.ts). */
  recover(entries: AttemptEntry[], logOffsets: Map<string, Offsets>) {
    this.detached.recover(entries, logOffsets);
  }

  /** Continues an attempt a previous agent process started: its output from the recorded offsets, then its real end. */
  private reattach(e: ReattachEffect) {
    const { runId, stepId, attempt, attemptId } = e;
    const taken = this.detached.take(attemptId, e.spec.timeoutMs);
    if (!taken) return this.dispatch({ type: 'ended', runId, stepId, attempt, outcome: { kind: 'lost' }, report: {} });
    const { d, shell } = taken;
    this.executing.set(attemptId, shell);
    const masker = this.masker(this.stepOf(runId, stepId)!);
    // It had secrets, and this Assign brought none (removed or unreadable since): its output cannot be masked, so it is not sent.
    const withheld = d.entry.masked && masker.empty;
    if (withheld) this.opts.log.warn({ attemptId }, "the attempt's output is not reported: it had secrets, and the step came back without them");
    const output = withheld ? { finish: () => undefined } : this.follow(runId, stepId, attemptId, d.paths, d.offsets, masker);
    this.opts.log.info({ attemptId, state: d.found.state }, 're-attached to an attempt started before the agent restarted');
    void shell.result.then((res) => {
      output.finish();
      this.attemptEnded(runId, stepId, attempt, attemptId, d.paths, res, masker);
    });
  }

  /** Streams an attempt's output files into the journal. */
  private follow(runId: string, stepId: string, attemptId: string, paths: AttemptPaths, from: Offsets, masker: Masker, open?: Supervised['files']): AttemptOutput {
    return this.output(runId, stepId, attemptId, paths, from, masker, open).follow();
  }

  /** An attempt's output files as LogChunks into the journal (the offsets move only past what is on disk). */
  private output(runId: string, stepId: string, attemptId: string, paths: AttemptPaths, from: Offsets, masker: Masker, open?: Supervised['files']): AttemptOutput {
    const emit = (stream: Stream, data: Buffer, offset: number) => this.opts.emit(logChunkOut(runId, stepId, attemptId, stream, data, Date.now(), offset)) !== false;
    return new AttemptOutput(paths, from, masker, emit, open, (message) => this.opts.log.warn({ attemptId }, message));
  }

  /**
   * Prepares (work dir, environment, a process step's files), records in
   * the ledger and launches one attempt. What goes wrong comes back to the
   * machine as the attempt's end: a disk error postpones it, anything else
   * fails the step.
   */
  private start(e: StartEffect) {
    const { runId, stepId, attempt, attemptId, spec } = e;
    const step = this.stepOf(runId, stepId)!;
    const masker = this.masker(step);
    const supervised = PROCESS_KINDS.has(spec.kind || 'run');
    const runDir = join(this.opts.workDir, runId);
    const paths = attemptPaths(this.opts.attemptsDir, runId, stepId, attempt);
    const ended = (outcome: Outcome, report = {}) => this.dispatch({ type: 'ended', runId, stepId, attempt, outcome, report });
    let env: Record<string, string>;
    // A process step's files (and a script step's script), made before the attempt is recorded: a full disk postpones it.
    let files: ReturnType<typeof openOutputs> | undefined;
    let what: { script?: string; argv: string[] } = { argv: [] };
    try {
      const slice = this.state.slices.get(runId)!;
      if (!this.workDirs.has(slice)) {
        mkdirSync(runDir, { recursive: true });
        this.workDirs.add(slice);
      }
      env = this.stepEnv(e, slice.workflow, paths.output);
      // Built-in steps run in this process: no files of their own.
      if (supervised) {
        mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
        files = openOutputs(paths);
        what = (spec.kind || 'run') === 'run' ? { script: spec.run, argv: [] } : { argv: this.argv(e, paths) };
      }
    } catch (err) {
      closeOutputs(files);
      if (DISK_ERRORS.has((err as NodeJS.ErrnoException).code ?? '')) return ended({ kind: 'diskError', why: (err as Error).message });
      return ended({ kind: 'unstartable', message: `cannot prepare the step: ${(err as Error).message}` });
    }
    // Recorded before it runs, or it does not run: an attempt never runs unrecorded (a restart would run it again).
    if (!this.opts.ledger.started(attemptId, { supervised, masked: !masker.empty })) {
      closeOutputs(files);
      return ended({ kind: 'diskError', why: 'the attempt ledger cannot be written' });
    }
    const startedAtMs = Date.now();
    this.dispatch({ type: 'started', runId, stepId, attempt, startedAtMs });
    let shell: RunningShell;
    let output: { finish(): void };
    try {
      if (files) {
        const sup = startSupervised({ ...what, env, cwd: runDir, timeoutMs: spec.timeoutMs, graceMs: this.opts.graceMs, paths }, this.stats, files);
        if (sup.pid) this.opts.ledger.spawned(attemptId, sup.pid, startedAtMs);
        output = this.follow(runId, stepId, attemptId, paths, { stdout: 0, stderr: 0 }, masker, sup.files);
        shell = sup;
      } else {
        const pipe = this.pipe(runId, stepId, attemptId, masker);
        shell = this.builtin(e, step, masker, pipe.push);
        output = pipe;
      }
    } catch (err) {
      return ended({ kind: 'unstartable', message: (err as Error).message }, { startedAtMs, endedAtMs: Date.now() });
    }
    this.executing.set(attemptId, shell);
    void shell.result.then((res) => {
      output.finish();
      this.attemptEnded(runId, stepId, attempt, attemptId, paths, res, masker);
    });
  }

  /** The argv of a command or script step; templates in `command` are resolved here. */
  private argv(e: StartEffect, paths: AttemptPaths): string[] {
    if (e.spec.kind === 'script') {
      const file = join(paths.dir, 'script');
      writeFileSync(file, e.spec.script!.body, { mode: 0o700 });
      return [...e.spec.script!.interpreter.trim().split(/\s+/), file];
    }
    return e.spec.command.map((c) => renderTemplate(c, e.context()));
  }

  /** Output of a built-in step (it runs in this process): cut at line ends and masked on its way to the journal. */
  private pipe(runId: string, stepId: string, attemptId: string, masker: Masker) {
    const masked = (stream: Stream) => masker.stream((data) => this.opts.emit(logChunkOut(runId, stepId, attemptId, stream, data, Date.now())));
    const filters = { stdout: masked('stdout'), stderr: masked('stderr') };
    const lines = { stdout: new LineSplitter((d) => filters.stdout.push(d)), stderr: new LineSplitter((d) => filters.stderr.push(d)) };
    return {
      push: (stream: Stream, data: Buffer) => lines[stream].push(data),
      finish() {
        lines.stdout.flush();
        lines.stderr.flush();
        filters.stdout.end();
        filters.stderr.end();
      },
    };
  }

  /** Starts a built-in step by its kind; templates in data fields are resolved here. */
  private builtin(e: StartEffect, step: StepState, masker: Masker, onOutput: (stream: Stream, data: Buffer) => void): RunningShell {
    const { spec } = e;
    const render = (text: string) => renderTemplate(text, e.context());
    const builtinCtx = { timeoutMs: spec.timeoutMs, log: (stream: Stream, text: string) => onOutput(stream, Buffer.from(text)) };
    switch (spec.kind) {
      case 'sleep':
        return runSleep(spec.sleepMs, builtinCtx);
      case 'http': {
        const h = spec.http!;
        const headers = Object.fromEntries(Object.entries(h.headers).map(([k, v]) => [k, render(v)]));
        return runHttp({ method: h.method, url: render(h.url), headers, body: render(h.body), expectStatus: h.expectStatus }, { egress: this.opts.egress }, builtinCtx);
      }
      case 'file': {
        const f = spec.file!;
        return runFile(
          { path: render(f.path), content: render(f.content), mode: f.mode, owner: f.owner },
          { roots: this.opts.fileRoots, allowSpecialModes: this.opts.fileAllowSpecialModes, secretContent: !masker.empty },
          builtinCtx,
        );
      }
      case 'ssh': {
        const s = spec.ssh!;
        const commands = s.commands.map((c) => ({ command: render(c.command), name: c.name, timeoutMs: c.timeoutMs }));
        // A stored secret named as the credential came with the step: it wins over the agent's files.
        const own = step.secrets;
        const supplied = own[s.credential] !== undefined ? { text: own[s.credential], passphrase: own[`${s.credential}.passphrase`] } : undefined;
        return runSsh({ ...s, host: render(s.host), commands, supplied }, this.opts.ssh, e.runId, builtinCtx);
      }
      default:
        throw new Error(`this agent cannot run steps of kind "${spec.kind}"; upgrade the agent`);
    }
  }

  /** The agent's environment, the step's own variables (rendered by the machine), then the DROVER_* ones. */
  private stepEnv(e: StartEffect, workflow: string, outputFile: string): Record<string, string> {
    // The agent's own environment is read once: process.env is slow to enumerate.
    this.baseEnv ??= Object.fromEntries(Object.entries(process.env).filter((x): x is [string, string] => x[1] !== undefined && !x[0].startsWith('DROVER_')));
    return {
      ...this.baseEnv,
      ...e.env,
      DROVER_RUN_ID: e.runId,
      DROVER_WORKFLOW: workflow,
      DROVER_STEP_ID: e.stepId,
      DROVER_ATTEMPT_ID: e.attemptId,
      DROVER_AGENT: this.opts.agentName,
      DROVER_OUTPUT: outputFile,
    };
  }

  /** An executor's result as the machine's event: outputs read (and masked), the outcome typed. */
  private attemptEnded(runId: string, stepId: string, attempt: number, attemptId: string, paths: AttemptPaths, res: ShellResult, masker: Masker) {
    this.executing.delete(attemptId);
    let outputs: Record<string, string> = {};
    let outputError = '';
    try {
      outputs = { ...res.outputs, ...readOutputs(paths.output) };
    } catch (err) {
      outputError = (err as Error).message;
    }
    const { exitCode, signal, startedAtMs, endedAtMs, cpuSeconds, peakRssBytes } = res;
    const report = { exitCode, signal, startedAtMs, endedAtMs, cpuSeconds, peakRssBytes, outputs: masker.values(outputs) };
    this.dispatch({ type: 'ended', runId, stepId, attempt, outcome: outcomeOf(res, outputError), report });
  }
}

/** What an executor's result means; a cancel wins over anything else it says. */
function outcomeOf(res: ShellResult, outputError: string): Outcome {
  if (res.cancelled) return { kind: 'cancelled' };
  if (res.spawnError) return { kind: 'error', message: res.spawnError };
  if (res.timedOut) return { kind: 'timeout' };
  if (outputError) return { kind: 'error', message: outputError };
  return res.exitCode !== 0 ? { kind: 'exited' } : { kind: 'succeeded' };
}
