/**
 * Executes this agent's slices of plans. A step starts as soon as its needs
 * are met: needs on this agent are met locally (no round trip), needs on other
 * agents by a Release from the control plane. Keeps running while the link is
 * down; everything produced goes through the journal.
 *
 * A step's life: waiting -> running (attempt 1..n, with retry backoff) -> done.
 * Every attempt id is recorded in the ledger and never started twice.
 *
 * Process steps (run, command, script) run under a supervisor
 * (executor/supervise.ts) and do not depend on this process: after a restart
 * the agent finds them again (recover), and when the control plane sends the
 * step again it re-attaches to the attempt, streams its output from where the
 * last process stopped and reports its real end. Built-in steps (sleep, http,
 * file, ssh) run inside the agent and end with it: they are reported lost.
 *
 * Secret values come with the steps that use them (Assign.secrets), stay in
 * memory only, and are masked (executor/mask.ts) in everything a step
 * produces before it reaches the journal, the ledger or the link.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AssignOut, CancelOut, PlanStepOut, ReleaseOut, StepEvent, StepPhase } from '../proto/index.js';
import { runFile, runHttp, runSleep } from './executor/builtin.js';
import type { EgressPolicy } from './executor/egress.js';
import { LineSplitter } from './executor/lines.js';
import { Masker } from './executor/mask.js';
import { readOutputs } from './executor/outputs.js';
import { AttemptOutput, readOffsets, type Offsets } from './executor/output-tail.js';
import { ProcStats } from './executor/proc-stats.js';
import type { DevicePool } from './executor/ssh/pool.js';
import { runSsh } from './executor/ssh/step.js';
import type { RunningShell, ShellResult } from './executor/shell.js';
import { attachSupervised, attemptPaths, closeOutputs, findSupervised, openOutputs, removeAttempt, startSupervised, type AttemptPaths, type Found, type Supervised } from './executor/supervise.js';
import type { Logger } from './log.js';
import type { Body } from './journal.js';
import type { AttemptEntry, Ledger } from './ledger.js';
import { evaluateCondition, renderTemplate, type ExprContext } from './template.js';

type DoneStatus = 'succeeded' | 'failed' | 'skipped' | 'cancelled';

interface Dep {
  status: DoneStatus;
  outputs: Record<string, string>;
  /** Failed, but with continueOnError: dependents proceed. */
  tolerated: boolean;
}

interface LocalStep {
  plan: PlanStepOut;
  state: 'waiting' | 'running' | 'done';
  attempt: number;
  result?: Dep;
  shell?: RunningShell;
  retryTimer?: NodeJS.Timeout;
  /** Set when this one step was cancelled (a whole-run cancel uses the slice's reason). */
  cancelReason?: string;
  /** Stored secrets (`secrets.NAME`) and secret params this step was sent; memory only. */
  secrets: Record<string, string>;
  secretParams: Record<string, string>;
  /** Masks all of them in what the step produces. */
  masker: Masker;
}

interface Slice {
  runId: string;
  workflow: string;
  /** Typed params as CEL values (whole numbers as BigInt ints). */
  params: Record<string, unknown>;
  startedMs: number;
  steps: Map<string, LocalStep>;
  remote: Map<string, Dep>;
  cancelled: boolean;
  cancelReason: string;
  /** The run's work dir exists. */
  workDirMade?: boolean;
}

/** An attempt an earlier agent process started whose supervisor still ran (or had ended) at this one's start. */
interface Detached {
  entry: AttemptEntry;
  found: Exclude<Found, { state: 'gone' }>;
  paths: AttemptPaths;
  /** Where its output is to be read from: what was reported already. */
  offsets: Offsets;
}

/** Kinds run as a process under the supervisor. */
const PROCESS_KINDS = new Set(['run', 'command', 'script']);
/** Errors of a full or failing disk: an attempt that cannot start for one of these waits POSTPONE_MS and tries again. */
const DISK_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS']);
const POSTPONE_MS = 1000;
const LOG_STREAM = { stdout: 'LOG_STREAM_STDOUT', stderr: 'LOG_STREAM_STDERR' } as const;

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

const LOST_MESSAGE = 'lost: the agent stopped while this attempt ran';

/** Finished slices remembered (so a late duplicate Assign is ignored). */
const MAX_FINISHED_SLICES = 1000;

const DEP_STATUS: Record<string, DoneStatus> = {
  DEP_STATUS_SUCCEEDED: 'succeeded',
  DEP_STATUS_FAILED: 'failed',
  DEP_STATUS_SKIPPED: 'skipped',
  DEP_STATUS_CANCELLED: 'cancelled',
};

const PHASE: Record<DoneStatus, StepPhase> = {
  succeeded: 'STEP_PHASE_SUCCEEDED',
  failed: 'STEP_PHASE_FAILED',
  skipped: 'STEP_PHASE_SKIPPED',
  cancelled: 'STEP_PHASE_CANCELLED',
};

export class Runtime {
  private slices = new Map<string, Slice>();
  private finished: string[] = [];
  private stats = new ProcStats();
  private runningCount = 0;
  /** Attempts found still running (or ended unseen) after a restart, until their step is sent again or cancelled. */
  private detached = new Map<string, Detached>();
  /** This process's environment minus DROVER_* settings, the base of every step's environment. */
  private baseEnv: Record<string, string> | undefined;

  constructor(private readonly opts: RuntimeOptions) {
    mkdirSync(opts.workDir, { recursive: true });
    mkdirSync(opts.attemptsDir, { recursive: true, mode: 0o700 });
  }

  get running(): number {
    return this.runningCount;
  }

  /** Attempt ids currently executing (for Hello), those found after a restart included. */
  runningAttempts(): string[] {
    const out: string[] = [...this.detached.keys()];
    for (const s of this.slices.values()) {
      for (const st of s.steps.values()) if (st.state === 'running') out.push(this.attemptId(s, st.plan.id, st.attempt));
    }
    return out;
  }

  assign(a: AssignOut) {
    let slice = this.slices.get(a.runId);
    if (!slice) {
      slice = {
        runId: a.runId,
        workflow: a.workflow,
        params: celValue(a.paramsJson ? JSON.parse(a.paramsJson) : { ...a.params }) as Record<string, unknown>,
        startedMs: a.runStartedMs,
        steps: new Map(),
        remote: new Map(),
        cancelled: false,
        cancelReason: '',
      };
      this.slices.set(a.runId, slice);
    }
    for (const plan of a.steps) {
      if (slice.steps.has(plan.id)) continue;
      const secrets: Record<string, string> = {};
      const secretParams: Record<string, string> = {};
      for (const x of a.secrets) if (x.stepId === plan.id) (x.param ? secretParams : secrets)[x.name] = x.value;
      const masker = new Masker([...Object.values(secrets), ...Object.values(secretParams)]);
      slice.steps.set(plan.id, { plan, state: 'waiting', attempt: 0, secrets, secretParams, masker });
    }
    for (const r of a.released) this.applyRelease(slice, r);
    this.pump(slice);
  }

  release(r: ReleaseOut) {
    const slice = this.slices.get(r.runId);
    if (!slice) return this.opts.log.debug({ run: r.runId, step: r.stepId }, 'release for an unknown run ignored');
    this.applyRelease(slice, r);
    this.pump(slice);
  }

  cancel(c: CancelOut) {
    for (const [id, d] of this.detached) {
      const [runId, stepId] = id.split('/');
      if (runId === c.runId && (!c.stepId || stepId === c.stepId)) this.settleDetached(id, d, c.reason || 'cancelled');
    }
    const slice = this.slices.get(c.runId);
    if (!slice) return;
    if (c.stepId) {
      // One step only: the control plane moved it elsewhere (its agent was lost).
      const step = slice.steps.get(c.stepId);
      if (step && step.state !== 'done') this.stopStep(slice, step, c.reason || 'cancelled');
      return;
    }
    if (slice.cancelled) return;
    slice.cancelled = true;
    slice.cancelReason = c.reason || 'cancelled';
    this.opts.log.info({ run: slice.runId, reason: slice.cancelReason }, 'cancelling run');
    for (const step of slice.steps.values()) if (step.state === 'running') this.stopStep(slice, step, slice.cancelReason);
    this.pump(slice);
  }

  private stopStep(slice: Slice, step: LocalStep, reason: string) {
    step.cancelReason = reason;
    if (step.shell) return step.shell.cancel();
    clearTimeout(step.retryTimer);
    this.finish(slice, step, 'cancelled', { message: reason });
  }

  /**
   * After a restart: what became of each attempt that was running when the
   * last agent process stopped. A supervised process that still runs, or
   * ended with a status while no agent watched, waits for its step to be sent
   * again (resumeOrStart re-attaches to it); anything else is really gone and
   * reported lost (the retry policy applies when the step is sent again).
   * `logOffsets`: the output offsets the journal holds (Journal.logOffsets).
   */
  recover(entries: AttemptEntry[], logOffsets: Map<string, Offsets>) {
    this.sweepAttempts(new Set(entries.map((e) => e.attemptId)));
    for (const e of entries) {
      const [runId, stepId, attempt] = e.attemptId.split('/');
      const paths = attemptPaths(this.opts.attemptsDir, runId, stepId, Number(attempt));
      const found = e.supervised ? findSupervised(paths, e.pid) : ({ state: 'gone' } as const);
      if (found.state !== 'gone') {
        this.detached.set(e.attemptId, { entry: e, found, paths, offsets: this.offsetsOf(e.attemptId, paths, logOffsets) });
        this.opts.log.info({ attemptId: e.attemptId, ...found }, found.state === 'running' ? 'attempt still running after the agent restarted; re-attaching when its step comes' : 'attempt ended while the agent was down; reporting its end when its step comes');
        continue;
      }
      // Its last lines, unless it had secrets (masking them needs them, and they went with the last process).
      if (e.supervised && !e.masked) this.drain(runId, stepId, e.attemptId, paths, this.offsetsOf(e.attemptId, paths, logOffsets));
      // What the attempt wrote to $DROVER_OUTPUT may hold a secret in clear, and is never read now.
      this.opts.ledger.ended(e.attemptId, 'lost', {});
      removeAttempt(paths);
      this.opts.log.warn({ attemptId: e.attemptId }, 'attempt was running when the agent stopped and is gone without an exit status; reporting it lost');
      this.opts.emit({
        stepEvent: { runId, stepId, attemptId: e.attemptId, attempt: Number(attempt), phase: 'STEP_PHASE_LOST', message: LOST_MESSAGE, endedAtMs: Date.now() },
      });
    }
  }

  /** Where an attempt's output was reported up to: the larger of its offsets file and what the journal holds. */
  private offsetsOf(attemptId: string, paths: AttemptPaths, logOffsets: Map<string, Offsets>): Offsets {
    const a = readOffsets(paths);
    const b = logOffsets.get(attemptId) ?? { stdout: 0, stderr: 0 };
    return { stdout: Math.max(a.stdout, b.stdout), stderr: Math.max(a.stderr, b.stderr) };
  }

  /** Reports what is left of an ended attempt's output, at once. */
  private drain(runId: string, stepId: string, attemptId: string, paths: AttemptPaths, from: Offsets) {
    this.output(runId, stepId, attemptId, paths, from, new Masker([])).finish();
  }

  /** Removes attempt directories (`<run>.<attempt>.<step>`) left by a process killed before it removed them (their attempts had ended). */
  private sweepAttempts(unended: Set<string>) {
    for (const name of readdirSync(this.opts.attemptsDir)) {
      const m = /^([^.]+)\.(\d+)\.(.+)$/.exec(name);
      // Not ours (lost+found, a hand-made file): left alone.
      if (!m) continue;
      const [, run, attempt, step] = m;
      if (!unended.has(`${run}/${step}/${attempt}/${this.opts.agentName}`)) rmSync(join(this.opts.attemptsDir, name), { recursive: true, force: true });
    }
  }

  /**
   * A detached attempt whose step is not ours any more (the control plane
   * cancelled it or moved it away while this agent was down): stop it if it
   * still runs, report its output (unless it had secrets: those went with the
   * previous process, and masking needs them) and its real end.
   */
  private settleDetached(attemptId: string, d: Detached, reason: string) {
    this.detached.delete(attemptId);
    const [runId, stepId, attempt] = attemptId.split('/');
    // Found again now: it may have ended (or its pid gone to another process) since the start.
    const found = findSupervised(d.paths, d.found.state === 'running' ? d.found.pid : d.entry.pid);
    if (found.state === 'gone') {
      if (!d.entry.masked) this.drain(runId, stepId, attemptId, d.paths, d.offsets);
      this.opts.ledger.ended(attemptId, 'lost', {});
      removeAttempt(d.paths);
      this.opts.emit({ stepEvent: { runId, stepId, attemptId, attempt: Number(attempt), phase: 'STEP_PHASE_LOST', message: LOST_MESSAGE, endedAtMs: Date.now() } });
      return;
    }
    d = { ...d, found };
    const shell = attachSupervised(this.superviseSpec(d.paths, 0, d.entry.startedAtMs), d.found, this.stats);
    const output = d.entry.masked ? undefined : this.follow(runId, stepId, attemptId, d.paths, d.offsets, new Masker([]));
    shell.cancel();
    void shell.result.then((res) => {
      output?.finish();
      const status = res.cancelled && d.found.state === 'running' ? 'cancelled' : res.exitCode === 0 ? 'succeeded' : 'failed';
      this.opts.ledger.ended(attemptId, status, {});
      removeAttempt(d.paths);
      const message = status === 'cancelled' ? `stopped: ${reason}` : `${status === 'succeeded' ? 'succeeded' : `exited with code ${res.exitCode}`} while the agent was down; ${reason}`;
      this.opts.emit({
        stepEvent: { runId, stepId, attemptId, attempt: Number(attempt), phase: PHASE[status], message, exitCode: res.exitCode, startedAtMs: res.startedAtMs, endedAtMs: res.endedAtMs },
      });
    });
  }

  private applyRelease(slice: Slice, r: ReleaseOut) {
    const status = DEP_STATUS[r.status];
    if (status && !slice.steps.has(r.stepId)) slice.remote.set(r.stepId, { status, outputs: { ...r.outputs }, tolerated: r.tolerated });
  }

  private dep(slice: Slice, id: string): Dep | undefined {
    return slice.steps.get(id)?.result ?? slice.remote.get(id);
  }

  /** Starts, skips or cancels every waiting step whose needs are all resolved. */
  private pump(slice: Slice) {
    for (const step of slice.steps.values()) {
      if (step.state !== 'waiting') continue;
      const deps = step.plan.needs.map((n) => [n, this.dep(slice, n)] as const);
      if (deps.some(([, d]) => !d)) continue;
      const { plan } = step;
      if (slice.cancelled && !plan.isFinally) {
        this.finish(slice, step, 'cancelled', { message: slice.cancelReason });
        continue;
      }
      const notOk = deps.find(([, d]) => d!.status !== 'succeeded' && !d!.tolerated);
      if (notOk && !plan.isFinally) {
        const how = notOk[1]!.status === 'failed' ? 'failed' : `was ${notOk[1]!.status}`;
        this.finish(slice, step, 'skipped', { message: `skipped: needs ${notOk[0]}, which ${how}` });
        continue;
      }
      if (plan.when) {
        let go: boolean;
        try {
          go = evaluateCondition(plan.when, this.context(slice, plan));
        } catch (err) {
          this.finish(slice, step, 'failed', { message: `cannot evaluate when: ${(err as Error).message}` });
          continue;
        }
        if (!go) {
          this.finish(slice, step, 'skipped', { message: `skipped: condition "${plan.when}" is false` });
          continue;
        }
      }
      step.state = 'running';
      this.runningCount++;
      this.resumeOrStart(slice, step);
    }
    this.maybeForget(slice);
  }

  private context(slice: Slice, plan?: PlanStepOut): ExprContext {
    const steps: ExprContext['steps'] = {};
    for (const [id, d] of slice.remote) steps[id] = { status: d.status, outputs: d.outputs };
    for (const [id, s] of slice.steps) if (s.result) steps[id] = { status: s.result.status, outputs: s.result.outputs };
    const own = plan && slice.steps.get(plan.id);
    return {
      params: own && Object.keys(own.secretParams).length ? { ...slice.params, ...own.secretParams } : slice.params,
      secrets: own?.secrets ?? {},
      steps,
      run: { id: slice.runId, workflow: slice.workflow, started: new Date(slice.startedMs).toISOString() },
      agent: { name: this.opts.agentName, labels: this.opts.labels, facts: this.opts.facts },
      ...(plan?.itemJson ? { item: celValue(JSON.parse(plan.itemJson)) } : {}),
    };
  }

  private attemptId(slice: Slice, stepId: string, attempt: number) {
    return `${slice.runId}/${stepId}/${attempt}/${this.opts.agentName}`;
  }

  /**
   * Starts attempt 1, unless the ledger shows this step ran before a restart:
   * an ended attempt's result is reported again (the control plane ignores a
   * repeat), a lost one goes through the retry policy.
   */
  private resumeOrStart(slice: Slice, step: LocalStep) {
    let last = 0;
    while (this.opts.ledger.has(this.attemptId(slice, step.plan.id, last + 1))) last++;
    if (last === 0) return this.startAttempt(slice, step, 1);
    step.attempt = last;
    const entry = this.opts.ledger.get(this.attemptId(slice, step.plan.id, last))!;
    if (entry.ended === 'retried') return this.startAttempt(slice, step, last + 1);
    if (entry.ended && entry.ended !== 'lost') {
      return this.finish(slice, step, entry.ended, { outputs: entry.outputs, message: 'result recovered from the agent ledger after a restart' }, false);
    }
    const d = this.detached.get(entry.attemptId);
    if (d) return this.reattach(slice, step, d);
    this.retryOrFail(slice, step, entry.attemptId, {}, 0, LOST_MESSAGE);
  }

  /** Continues an attempt a previous agent process started: its output from the recorded offsets, then its real end. */
  private reattach(slice: Slice, step: LocalStep, d: Detached) {
    this.detached.delete(d.entry.attemptId);
    // Found again now: it may have ended (or its pid gone to another process) since the start.
    const found = findSupervised(d.paths, d.found.state === 'running' ? d.found.pid : d.entry.pid);
    if (found.state === 'gone') {
      this.opts.ledger.ended(d.entry.attemptId, 'lost', {});
      removeAttempt(d.paths);
      return this.retryOrFail(slice, step, d.entry.attemptId, {}, 0, LOST_MESSAGE);
    }
    const shell = attachSupervised(this.superviseSpec(d.paths, step.plan.timeoutMs, d.entry.startedAtMs), found, this.stats);
    step.shell = shell;
    // It had secrets, and this Assign brought none (removed or unreadable since): its output cannot be masked, so it is not sent.
    const withheld = d.entry.masked && step.masker.empty;
    if (withheld) this.opts.log.warn({ attemptId: d.entry.attemptId }, "the attempt's output is not reported: it had secrets, and the step came back without them");
    const output = withheld ? { finish: () => undefined } : this.follow(slice.runId, step.plan.id, d.entry.attemptId, d.paths, d.offsets, step.masker);
    this.opts.log.info({ attemptId: d.entry.attemptId, state: d.found.state }, 're-attached to an attempt started before the agent restarted');
    void shell.result.then((res) => {
      output.finish();
      this.attemptEnded(slice, step, d.entry.attemptId, d.paths, res);
    });
  }

  private superviseSpec(paths: AttemptPaths, timeoutMs: number, startedAtMs = Date.now()) {
    return { argv: [], env: {}, cwd: paths.dir, timeoutMs, graceMs: this.opts.graceMs, startedAtMs, paths };
  }

  /** Streams an attempt's output files into the journal. */
  private follow(runId: string, stepId: string, attemptId: string, paths: AttemptPaths, from: Offsets, masker: Masker, open?: Supervised['files']): AttemptOutput {
    return this.output(runId, stepId, attemptId, paths, from, masker, open).follow();
  }

  /** An attempt's output files as LogChunks into the journal (the offsets move only past what is on disk). */
  private output(runId: string, stepId: string, attemptId: string, paths: AttemptPaths, from: Offsets, masker: Masker, open?: Supervised['files']): AttemptOutput {
    const emit = (stream: 'stdout' | 'stderr', data: Buffer, offset: number) =>
      this.opts.emit({ log: { runId, stepId, attemptId, stream: LOG_STREAM[stream], data, atMs: Date.now(), offset } }) !== false;
    return new AttemptOutput(paths, from, masker, emit, open, (message) => this.opts.log.warn({ attemptId }, message));
  }


  private startAttempt(slice: Slice, step: LocalStep, attempt: number) {
    const { plan } = step;
    const attemptId = this.attemptId(slice, plan.id, attempt);
    if (this.opts.ledger.has(attemptId)) {
      this.opts.log.warn({ attemptId }, 'attempt already started once; not starting it again');
      return;
    }
    const supervised = PROCESS_KINDS.has(plan.kind || 'run');
    step.retryTimer = undefined;
    const runDir = join(this.opts.workDir, slice.runId);
    const paths = attemptPaths(this.opts.attemptsDir, slice.runId, plan.id, attempt);
    let env: Record<string, string>;
    // A process step's files (and a script step's script), made before the attempt is recorded: a full disk postpones it.
    let files: ReturnType<typeof openOutputs> | undefined;
    let what: { script?: string; argv: string[] } = { argv: [] };
    try {
      // Once per slice: it adds up on short steps.
      if (!slice.workDirMade) {
        mkdirSync(runDir, { recursive: true });
        slice.workDirMade = true;
      }
      env = this.stepEnv(slice, plan, attemptId, paths.output);
      // Built-in steps run in this process: no files of their own.
      if (supervised) {
        mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
        files = openOutputs(paths);
        what = (plan.kind || 'run') === 'run' ? { script: plan.run, argv: [] } : { argv: this.argv(slice, plan, paths) };
      }
    } catch (err) {
      closeOutputs(files);
      if (DISK_ERRORS.has((err as NodeJS.ErrnoException).code ?? '')) return this.postpone(slice, step, attempt, (err as Error).message);
      step.attempt = attempt;
      this.finish(slice, step, 'failed', { message: `cannot prepare the step: ${(err as Error).message}` });
      return;
    }
    // Recorded before it runs, or it does not run: an attempt never runs unrecorded (a restart would run it again).
    if (!this.opts.ledger.started(attemptId, { supervised, masked: !step.masker.empty })) {
      closeOutputs(files);
      return this.postpone(slice, step, attempt, 'the attempt ledger cannot be written');
    }
    step.attempt = attempt;
    const startedAtMs = Date.now();
    this.event(slice, plan.id, attemptId, attempt, 'STEP_PHASE_STARTED', { startedAtMs });
    let shell: RunningShell;
    let output: { finish(): void };
    try {
      if (files) {
        const sup = startSupervised({ ...what, env, cwd: runDir, timeoutMs: plan.timeoutMs, graceMs: this.opts.graceMs, paths }, this.stats, files);
        if (sup.pid) this.opts.ledger.spawned(attemptId, sup.pid, startedAtMs);
        output = this.follow(slice.runId, plan.id, attemptId, paths, { stdout: 0, stderr: 0 }, step.masker, sup.files);
        shell = sup;
      } else {
        const pipe = this.pipe(slice.runId, plan.id, attemptId, step.masker);
        shell = this.builtin(slice, plan, pipe.push);
        output = pipe;
      }
    } catch (err) {
      this.finish(slice, step, 'failed', { startedAtMs, endedAtMs: Date.now(), message: (err as Error).message });
      return;
    }
    step.shell = shell;
    void shell.result.then((res) => {
      output.finish();
      this.attemptEnded(slice, step, attemptId, paths, res);
    });
  }

  /**
   * The state dir's disk refused what starting an attempt needs (a full or
   * failing disk): the step waits and tries again, as the same attempt.
   */
  private postpone(slice: Slice, step: LocalStep, attempt: number, why: string) {
    this.opts.log.warn({ run: slice.runId, step: step.plan.id, attempt, why }, 'cannot start the step now: the state dir cannot be written; trying again in 1 s');
    step.retryTimer = setTimeout(() => this.startAttempt(slice, step, attempt), POSTPONE_MS);
  }

  /** The argv of a command or script step; templates in `command` are resolved here. */
  private argv(slice: Slice, plan: PlanStepOut, paths: AttemptPaths): string[] {
    if (plan.kind === 'script') {
      const file = join(paths.dir, 'script');
      writeFileSync(file, plan.script!.body, { mode: 0o700 });
      return [...plan.script!.interpreter.trim().split(/\s+/), file];
    }
    const ctx = this.context(slice, plan);
    return plan.command.map((c) => renderTemplate(c, ctx));
  }

  /** Output of a built-in step (it runs in this process): cut at line ends and masked on its way to the journal. */
  private pipe(runId: string, stepId: string, attemptId: string, masker: Masker) {
    const masked = (stream: 'LOG_STREAM_STDOUT' | 'LOG_STREAM_STDERR') =>
      masker.stream((data) => this.opts.emit({ log: { runId, stepId, attemptId, stream, data, atMs: Date.now() } }));
    const filters = { stdout: masked('LOG_STREAM_STDOUT'), stderr: masked('LOG_STREAM_STDERR') };
    const lines = { stdout: new LineSplitter((d) => filters.stdout.push(d)), stderr: new LineSplitter((d) => filters.stderr.push(d)) };
    return {
      push: (stream: 'stdout' | 'stderr', data: Buffer) => lines[stream].push(data),
      finish() {
        lines.stdout.flush();
        lines.stderr.flush();
        filters.stdout.end();
        filters.stderr.end();
      },
    };
  }

  /** Starts a built-in step by its kind; templates in data fields are resolved here. */
  private builtin(slice: Slice, plan: PlanStepOut, onOutput: (stream: 'stdout' | 'stderr', data: Buffer) => void): RunningShell {
    let ctx: ExprContext | undefined;
    const render = (text: string) => renderTemplate(text, (ctx ??= this.context(slice, plan)));
    const builtinCtx = { timeoutMs: plan.timeoutMs, log: (stream: 'stdout' | 'stderr', text: string) => onOutput(stream, Buffer.from(text)) };
    switch (plan.kind) {
      case 'sleep':
        return runSleep(plan.sleepMs, builtinCtx);
      case 'http': {
        const h = plan.http!;
        const headers = Object.fromEntries(Object.entries(h.headers).map(([k, v]) => [k, render(v)]));
        return runHttp({ method: h.method, url: render(h.url), headers, body: render(h.body), expectStatus: h.expectStatus }, { egress: this.opts.egress }, builtinCtx);
      }
      case 'file': {
        const f = plan.file!;
        const secretContent = !(slice.steps.get(plan.id)?.masker.empty ?? true);
        return runFile(
          { path: render(f.path), content: render(f.content), mode: f.mode, owner: f.owner },
          { roots: this.opts.fileRoots, allowSpecialModes: this.opts.fileAllowSpecialModes, secretContent },
          builtinCtx,
        );
      }
      case 'ssh': {
        const s = plan.ssh!;
        const commands = s.commands.map((c) => ({ command: render(c.command), name: c.name, timeoutMs: c.timeoutMs }));
        // A stored secret named as the credential came with the step: it wins over the agent's files.
        const own = slice.steps.get(plan.id)?.secrets ?? {};
        const supplied = own[s.credential] !== undefined ? { text: own[s.credential], passphrase: own[`${s.credential}.passphrase`] } : undefined;
        return runSsh({ ...s, host: render(s.host), commands, supplied }, this.opts.ssh, slice.runId, builtinCtx);
      }
      default:
        throw new Error(`this agent cannot run steps of kind "${plan.kind}"; upgrade the agent`);
    }
  }

  private stepEnv(slice: Slice, plan: PlanStepOut, attemptId: string, outputFile: string): Record<string, string> {
    // The agent's own environment is read once: process.env is slow to enumerate.
    this.baseEnv ??= Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined && !e[0].startsWith('DROVER_')));
    const env: Record<string, string> = { ...this.baseEnv };
    const entries = Object.entries(plan.env);
    if (entries.length) {
      const ctx = this.context(slice, plan);
      for (const [k, v] of entries) env[k] = renderTemplate(v, ctx);
    }
    Object.assign(env, {
      DROVER_RUN_ID: slice.runId,
      DROVER_WORKFLOW: slice.workflow,
      DROVER_STEP_ID: plan.id,
      DROVER_ATTEMPT_ID: attemptId,
      DROVER_AGENT: this.opts.agentName,
      DROVER_OUTPUT: outputFile,
    });
    return env;
  }

  private attemptEnded(slice: Slice, step: LocalStep, attemptId: string, paths: AttemptPaths, res: ShellResult) {
    step.shell = undefined;
    const { plan } = step;
    let outputs: Record<string, string> = {};
    let outputError = '';
    try {
      outputs = { ...res.outputs, ...readOutputs(paths.output) };
    } catch (err) {
      outputError = (err as Error).message;
    }
    const fields = {
      exitCode: res.exitCode,
      signal: res.signal,
      startedAtMs: res.startedAtMs,
      endedAtMs: res.endedAtMs,
      cpuSeconds: res.cpuSeconds,
      peakRssBytes: res.peakRssBytes,
      outputs,
    };
    if (res.cancelled) return this.finish(slice, step, 'cancelled', { ...fields, message: step.cancelReason || slice.cancelReason || 'cancelled' });
    const message = res.spawnError
      ? res.spawnError
      : res.timedOut
        ? `timed out after ${plan.timeoutMs / 1000}s; the step's process group was killed`
        : outputError || (res.exitCode !== 0 ? `exited with code ${res.exitCode}${res.signal ? ` (${res.signal})` : ''}` : '');
    if (!message) return this.finish(slice, step, 'succeeded', fields);
    this.retryOrFail(slice, step, attemptId, fields, res.exitCode, message);
  }

  /** After a failed or lost attempt: the next attempt after the backoff, or the step fails. */
  private retryOrFail(slice: Slice, step: LocalStep, attemptId: string, fields: Partial<StepEvent>, exitCode: number, message: string) {
    const retry = step.plan.retry;
    const retryable =
      retry && step.attempt < retry.attempts && !slice.cancelled && (retry.retryOn.length === 0 || retry.retryOn.includes(exitCode) || message === LOST_MESSAGE);
    if (!retryable) return this.finish(slice, step, 'failed', { ...fields, message });
    // Not 'failed': an agent restarted before the next attempt starts must start it, not report the step failed.
    this.opts.ledger.ended(attemptId, 'retried', {});
    this.removeAttempt(slice, step);
    const delay = backoffDelay(retry, step.attempt);
    this.event(slice, step.plan.id, attemptId, step.attempt, 'STEP_PHASE_RETRYING', {
      ...fields,
      message: `attempt ${step.attempt} of ${retry.attempts} ${message}; retrying in ${(delay / 1000).toFixed(1)}s`,
    });
    step.retryTimer = setTimeout(() => this.startAttempt(slice, step, step.attempt + 1), delay);
  }

  private finish(slice: Slice, step: LocalStep, status: DoneStatus, fields: Partial<StepEvent>, record = true) {
    if (step.state === 'running') this.runningCount--;
    step.state = 'done';
    const tolerated = status === 'failed' && step.plan.continueOnError;
    const outputs = step.masker.values({ ...(fields.outputs as Record<string, string> | undefined) });
    fields = { ...fields, outputs };
    step.result = { status, outputs, tolerated };
    const attempt = step.attempt;
    const attemptId = attempt ? this.attemptId(slice, step.plan.id, attempt) : '';
    // The ledger first: if the agent dies before the event is journaled, the
    // result is reported again after the restart instead of being re-run.
    if (attemptId && record) this.opts.ledger.ended(attemptId, status, outputs);
    // Only once the end is in the ledger: a restart in between would take the attempt for lost and run it again.
    if (attempt) this.removeAttempt(slice, step);
    this.event(slice, step.plan.id, attemptId, attempt, PHASE[status], fields);
    this.opts.log.info({ run: slice.runId, step: step.plan.id, status, attempt }, 'step finished');
    this.pump(slice);
  }

  /** The attempt's files ($DROVER_OUTPUT may hold a secret in clear; the outputs went through the journal masked). */
  private removeAttempt(slice: Slice, step: LocalStep) {
    removeAttempt(attemptPaths(this.opts.attemptsDir, slice.runId, step.plan.id, step.attempt));
  }

  private event(slice: Slice, stepId: string, attemptId: string, attempt: number, phase: StepPhase, fields: Partial<StepEvent>) {
    const masker = slice.steps.get(stepId)?.masker;
    if (masker && !masker.empty) {
      fields = { ...fields, message: masker.text(fields.message ?? '') };
      if (fields.outputs) fields.outputs = masker.values(fields.outputs as Record<string, string>);
    }
    this.opts.emit({ stepEvent: { ...fields, runId: slice.runId, stepId, attemptId, attempt, phase } });
  }

  /** Keeps a bounded memory of finished slices. */
  private maybeForget(slice: Slice) {
    if ([...slice.steps.values()].some((s) => s.state !== 'done') || this.finished.includes(slice.runId)) return;
    this.finished.push(slice.runId);
    // This agent's part of the run is done: its device sessions close.
    this.opts.ssh?.endRun(slice.runId);
    while (this.finished.length > MAX_FINISHED_SLICES) this.slices.delete(this.finished.shift()!);
  }
}

/** JSON values as CEL sees them: whole numbers become ints (BigInt), like the compiler's type check. */
export function celValue(v: unknown): unknown {
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (Array.isArray(v)) return v.map(celValue);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, celValue(x)]));
  return v;
}

/** Delay before attempt n+1: fixed or exponential from `initialMs`, capped at `maxMs`, plus jitter. */
export function backoffDelay(retry: PlanStepOut['retry'] & object, attempt: number, random = Math.random): number {
  const base = retry.backoff === 'BACKOFF_EXPONENTIAL' ? retry.initialMs * 2 ** (attempt - 1) : retry.initialMs;
  const capped = Math.min(base, retry.maxMs || base);
  return Math.round(capped * (1 + (retry.jitter || 0) * random()));
}
