/**
 * The ssh step: on a proxy agent, run a list of commands on a network device
 * through a pooled SSH session (pool.ts), one after the other. Every output
 * line goes to the step's log prefixed with its command (`[show version] …`),
 * and each command's output becomes an output (`out_0`, `out_1`, … or the
 * command's `name`). The step fails at the first command whose output has a
 * line matching `errorPattern` (device CLIs tend to exit 0 on error), that
 * exits non-zero (exec mode), that times out, or after which the device
 * closes the session with commands left. Credential secrets are masked.
 *
 * Exit codes: 0 success; 1 an error line; the command's status (exec mode);
 * 124 a command timed out; 255 the device could not be reached or logged
 * into (as ssh(1) does) — so `retry.retryOn: [255]` retries connection
 * failures only.
 */
import { compilePattern, PatternError, type Pattern } from '../../../common/pattern.js';
import { builtin, type BuiltinContext, type Outcome } from '../builtin.js';
import type { RunningShell } from '../shell.js';
import { CredentialError, mask } from './credentials.js';
import type { DevicePool } from './pool.js';
import { SshError } from './session.js';

export interface SshCommandSpec {
  command: string;
  /** Output key; '' means out_<index>. */
  name: string;
  /** 0: the step's commandTimeoutMs. */
  timeoutMs: number;
}

/** An ssh step with its templates resolved (the plan's SshSpec). */
export interface SshStepSpec {
  device: string;
  host: string;
  port: number;
  user: string;
  credential: string;
  commands: SshCommandSpec[];
  errorPattern: string;
  mode: string;
  prompt: string;
  commandTimeoutMs: number;
  maxSessions: number;
  /** The credential sent with the step (a stored secret of the control plane); absent: the agent's files. */
  supplied?: { text: string; passphrase?: string };
}

/** Exit code of a step whose device could not be reached or logged into. */
export const EXIT_CONNECT = 255;
/** Exit code of a step whose command timed out (as timeout(1) uses). */
export const EXIT_COMMAND_TIMEOUT = 124;
/** Each command's output kept as an output, at most (bytes; the log has all of it). */
export const MAX_OUTPUT_BYTES = 64 * 1024;
/** All of a step's outputs together, at most: they travel in one StepEvent (see docs/workflows.md, Outputs). */
export const MAX_TOTAL_OUTPUT_BYTES = 192 * 1024;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

/** Cuts text to at most `max` bytes of UTF-8 without splitting a character. */
function cut(text: string, max: number): string {
  const buf = Buffer.from(text);
  if (buf.length <= max) return text;
  return buf.subarray(0, max).toString('utf8').replace(/\uFFFD$/, '');
}

export function runSsh(spec: SshStepSpec, pool: DevicePool | undefined, runId: string, ctx: BuiltinContext): RunningShell {
  return builtin(ctx, (signal) => sshWork(spec, pool, runId, ctx, signal));
}

async function sshWork(spec: SshStepSpec, pool: DevicePool | undefined, runId: string, ctx: BuiltinContext, signal: AbortSignal): Promise<Outcome> {
  const label = spec.device || `${spec.host}:${spec.port}`;
  if (!pool) return { ok: false, message: 'this agent cannot run ssh steps (it was started without SSH support)' };
  if (!spec.host) return { ok: false, message: `device ${label} has no host` };
  const bad = spec.commands.findIndex((c) => CONTROL.test(c.command));
  if (bad >= 0) {
    return {
      ok: false,
      message: `ssh.commands[${bad}] holds a line break or control character once its templates are resolved; a value may not add commands to the device session`,
    };
  }
  // The control plane compiled these too; a plan from an older one may hold a pattern RE2 refuses.
  let errorRe: Pattern | undefined;
  let promptRe: Pattern;
  try {
    errorRe = spec.errorPattern ? compilePattern(spec.errorPattern, 'ssh.errorPattern') : undefined;
    promptRe = compilePattern(spec.prompt, 'ssh.prompt');
  } catch (err) {
    if (err instanceof PatternError) return { ok: false, message: err.message };
    throw err;
  }

  const limit = Math.max(1, spec.maxSessions || 1);
  let lease;
  try {
    lease = await pool.acquire(
      runId,
      { host: spec.host, port: spec.port || 22, user: spec.user, label, credential: spec.credential, maxSessions: limit, supplied: spec.supplied },
      signal,
      (busy) => ctx.log('stdout', `waiting for device ${label}: ${busy} step${busy === 1 ? '' : 's'} using it, ${limit} allowed at a time\n`),
    );
  } catch (err) {
    if (err instanceof SshError && err.code === 'CANCELLED') throw err;
    if (err instanceof SshError || err instanceof CredentialError) return { ok: false, message: err.message, exitCode: EXIT_CONNECT };
    throw err;
  }
  const secrets = lease.credential.secrets;
  const hide = (text: string) => mask(text, secrets);
  ctx.log(
    'stdout',
    lease.reused
      ? `reusing the session to device ${label} (${spec.user}@${spec.host}:${spec.port})\n`
      : `connected to device ${label} (${spec.user}@${spec.host}:${spec.port}) with credential ${spec.credential}\n`,
  );

  const outputs: Record<string, string> = { device: label };
  let total = 0;
  let reusable = true;
  try {
    for (const [i, c] of spec.commands.entries()) {
      const key = c.name || `out_${i}`;
      const timeoutMs = c.timeoutMs || spec.commandTimeoutMs;
      let matched: string | undefined;
      let any = false;
      const onLine = (line: string, stream: 'stdout' | 'stderr') => {
        any = true;
        const shown = hide(line);
        ctx.log(stream, `[${c.command}] ${shown}\n`);
        if (matched === undefined && errorRe?.test(line)) matched = shown;
      };
      const res =
        spec.mode === 'exec'
          ? await lease.session.execCommand(c.command, timeoutMs, signal, onLine)
          : await lease.session.shellCommand(c.command, promptRe, timeoutMs, signal, onLine);
      if (!any) ctx.log('stdout', `[${c.command}] (no output)\n`);
      const text = hide(res.lines.join('\n'));
      const kept = cut(text, Math.min(MAX_OUTPUT_BYTES, Math.max(0, MAX_TOTAL_OUTPUT_BYTES - total)));
      outputs[key] = kept;
      if (kept.length < text.length) outputs[`${key}_truncated`] = 'true';
      total += Buffer.byteLength(kept);

      const left = spec.commands.length - i - 1;
      const notRun = left ? `; ${left} later command${left === 1 ? ' was' : 's were'} not run` : '';
      const which = `command ${i + 1} "${c.command}" on device ${label}`;
      if (res.closed) reusable = false;
      if (matched !== undefined) {
        return { ok: false, outputs, message: `${which} failed: its output matched errorPattern: ${matched.trim()}${notRun}`, exitCode: 1 };
      }
      if (res.exitCode !== 0) return { ok: false, outputs, message: `${which} exited with status ${res.exitCode}${notRun}`, exitCode: res.exitCode };
      if (res.closed && left) return { ok: false, outputs, message: `device ${label} closed the session after ${which.split(' on ')[0]}${notRun}` };
    }
    return { ok: true, outputs };
  } catch (err) {
    reusable = false;
    if (err instanceof SshError && err.code === 'CANCELLED') throw err;
    if (err instanceof SshError) {
      if (err.code === 'TIMEOUT') return { ok: false, outputs, message: `${hide(err.message)}; the session was closed`, exitCode: EXIT_COMMAND_TIMEOUT };
      return { ok: false, outputs, message: hide(err.message), exitCode: EXIT_CONNECT };
    }
    throw err;
  } finally {
    lease.release(reusable);
  }
}
