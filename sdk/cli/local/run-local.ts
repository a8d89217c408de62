/**
 * `drover run FILE --local`: a throwaway control plane and one agent,
 * `local`, as real processes in a temporary directory (the sandbox of
 * `drover dev`, dev/sandbox.ts), the workflow run on them with every step
 * targeted at that agent (retarget.ts), its progress and result printed,
 * and everything stopped and removed afterwards: when the run ends, when
 * it cannot start, and on Ctrl-C or SIGTERM (the run is cancelled with the
 * processes). The exit code is the run's (0 succeeded, 1 otherwise; 130
 * after Ctrl-C, 143 after SIGTERM). Stored secrets the steps name are read
 * from environment variables of the same names and stored in the throwaway
 * control plane only.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compile } from '../../../common/workflow/compiler/compile.js';
import { DroverClient } from '../../client.js';
import { parseWorkflowText } from '../../diff.js';
import { InternalError, InvalidInputError } from '../../errors.js';
import { planWorkflow } from '../../offline.js';
import { encodeParams } from '../../params.js';
import { resolveWorkflow } from '../../source.js';
import type { Params, Run } from '../../types.js';
import { freePortPair } from '../dev/port.js';
import { startSandbox, waitForSandbox } from '../dev/sandbox.js';
import { describeExit, logTail, Supervisor } from '../dev/supervisor.js';
import { cli } from '../invocation.js';
import { followRun } from '../render/follow.js';
import { EXIT } from '../report.js';
import { retarget } from './retarget.js';

/** The one agent's name. */
export const LOCAL_AGENT = 'local';

/** Exit code after SIGTERM (128 + 15), as shells report it. */
const EXIT_SIGTERM = 143;

export interface LocalRunOptions {
  /** `-o json`: no progress; the run's record on stdout when it ends. */
  json: boolean;
}

/** The stored secrets the workflow's steps name (as the compiler finds them), each from the environment variable of its name. */
function secretValues(source: string, params: Params, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const names = [...new Set(compile({ source, params: encodeParams(params), fleet: [], devices: [] }).plan?.steps.flatMap((st) => st.secrets) ?? [])].sort();
  const missing = names.filter((n) => env[n] === undefined);
  if (missing.length) {
    throw new InvalidInputError(`the workflow uses the stored secret${missing.length === 1 ? '' : 's'} ${missing.join(', ')}, which --local reads from the environment`, {
      hint: `set ${missing.map((n) => `${n}=…`).join(' ')} for this command (e.g. \`${missing[0]}=$(cat FILE) ${cli()} run … --local\`)`,
    });
  }
  return Object.fromEntries(names.map((n) => [n, env[n]!]));
}

/** Runs `file` locally (see the header) and returns the exit code. */
export async function runLocal(file: string, params: Params, opts: LocalRunOptions): Promise<number> {
  const resolved = await resolveWorkflow(file);
  if (resolved.kind === 'ref') {
    throw new InvalidInputError(`${file} is not a file: --local runs a workflow file`, { hint: 'save a registered one with `drover workflow show NAME --source > FILE`' });
  }
  const { doc, ignored, networks, approvals } = retarget(parseWorkflowText(resolved.source, resolved.filename), LOCAL_AGENT);
  // The file's own problems, with its lines, before anything starts.
  await planWorkflow(file, params, { agents: [] });
  const secrets = secretValues(resolved.source, params);

  const dir = mkdtempSync(join(tmpdir(), 'drover-local-'));
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  process.once('exit', removeDir);
  let failed: string | undefined;
  let onFailure: () => void = () => {};
  const supervisor = new Supervisor((child) => {
    failed = `${child.name} ${describeExit(child)}; last lines of its log:\n${logTail(child.logFile)}`;
    onFailure();
  });
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= supervisor.stopAll().then(removeDir));
  const onSignal = (code: number) => () => {
    process.stderr.write('\nstopping the local control plane and agent...\n');
    void stop().then(() => process.exit(code));
  };
  const onInt = onSignal(EXIT.interrupted);
  const onTerm = onSignal(EXIT_SIGTERM);
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  let client: DroverClient | undefined;
  try {
    const labels = Object.fromEntries(networks.map((n) => [`proxy.${n}`, 'true']));
    const sandbox = await startSandbox(supervisor, await freePortPair('127.0.0.1'), dir, [{ name: LOCAL_AGENT, labels }]);
    await waitForSandbox(sandbox);
    const notes = [`a local control plane (${sandbox.address}) and one agent, ${LOCAL_AGENT}, in ${dir}; removed when the run ends`];
    if (ignored.length) notes.push(`every step runs on ${LOCAL_AGENT}; targets ignored: ${ignored.map((i) => `${i.id} (${i.target})`).join(', ')}`);
    if (Object.keys(secrets).length) notes.push(`secrets from the environment: ${Object.keys(secrets).join(', ')}`);
    if (approvals.length) {
      notes.push(
        `approval steps wait for a decision (${approvals.join(', ')}): DROVER_ADDR=${sandbox.address} DROVER_CA=${sandbox.caFile} DROVER_TOKEN=$(cat ${sandbox.tokenFile}) ${cli()} approve RUN STEP`,
      );
    }
    process.stderr.write(notes.map((n) => `notice: ${n}\n`).join(''));
    client = new DroverClient(sandbox.client);
    const c = client;
    for (const [name, value] of Object.entries(secrets)) await c.secrets.set(name, value);
    const handle = await c.runs.launch(doc, params);
    const died = new Promise<never>((_, reject) => {
      onFailure = () => reject(new InternalError(`the local ${failed}`));
      if (failed) onFailure();
    });
    if (!opts.json) process.stdout.write(`run ${handle.id} started (${handle.run.workflow}, local)\n`);
    const run: Run = await Promise.race([opts.json ? handle.wait() : followRun(c, handle.id), died]);
    if (opts.json) process.stdout.write(JSON.stringify(run, null, 2) + '\n');
    return run.status === 'succeeded' ? EXIT.ok : EXIT.failure;
  } finally {
    client?.close();
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    await stop();
    process.off('exit', removeDir);
  }
}
