/**
 * Approval gates against real processes: a control plane, one agent, the
 * CLI and the SDK. Gates are approved and rejected from each, time out both
 * ways, refuse who is not an approver and what cannot be decided; who decided
 * and why lands in the step, the run's log and the audit log. A control
 * plane SIGKILLed while a run waits at a gate still waits after its restart,
 * with the same deadline, and the approval given then finishes the run.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApprovalDecidedError, ApprovalNotOpenError, DroverClient, InvalidInputError, PermissionDeniedError, type Run } from '../../sdk/index.js';
import { cli, startAgent, startServer, tempDir, waitFor, workflowFile, type ServerProc } from '../helpers/cluster.js';

const dir = tempDir('drover-approvals-');

/** build -> gate -> ship; ship writes what the gate's outputs said into a file. */
const gated = (name: string, approval: string) =>
  workflowFile(
    dir,
    `${name}.yaml`,
    `name: ${name}
params:
  version: { type: string, default: "1.2" }
  out: { type: string }
steps:
  - id: build
    run: echo "image=app:$VERSION" >> "$DROVER_OUTPUT"
    env: { VERSION: "\${{ params.version }}" }
  - id: gate
    needs: [build]
    approval:
      approvers: [operator, alice]
      message: "Ship \${{ steps.build.outputs.image }} to production?"
      ${approval}
  - id: ship
    needs: [gate]
    env: { OUT: "\${{ params.out }}", BY: "\${{ steps.gate.outputs.decidedBy }}", WHY: "\${{ steps.gate.outputs.reason }}" }
    run: printf '%s|%s' "$BY" "$WHY" > "$OUT"
`,
  );

const gateOf = (run: Run) => run.steps.find((s) => s.id === 'gate')!;

async function openGate(client: DroverClient, file: string, out: string): Promise<Run> {
  const handle = await client.runs.launch(file, { out });
  return waitFor(
    async () => {
      const run = await client.runs.get(handle.id);
      return gateOf(run).status === 'running' && run;
    },
    20_000,
    () => `the gate of ${handle.id} to open`,
  );
}

describe('approvals - deciding gates from the CLI and the SDK', () => {
  let server: ServerProc;
  let admin: DroverClient;
  let operator: { token: string; client: DroverClient; env: Record<string, string> };
  let alice: { token: string; client: DroverClient; env: Record<string, string> };
  let viewer: { token: string; client: DroverClient; env: Record<string, string>; id: string };
  const as = (token: string) => ({ token, client: new DroverClient({ ...server.clientOptions, token }), env: { ...server.env, DROVER_TOKEN: token } });

  beforeAll(async () => {
    server = await startServer();
    startAgent(server, 'appr-1');
    admin = new DroverClient(server.clientOptions);
    await waitFor(async () => (await admin.fleet.list()).some((a) => a.name === 'appr-1' && a.state === 'connected'), 20_000, () => `agent:\n${server.output()}`);
    operator = as((await admin.access.createToken('operator', { description: 'release operator' })).token);
    // A viewer named alice is an approver by name; a viewer without a name is not.
    const made = await cli(['token', 'create', '--role', 'viewer', '--name', 'alice'], server.env);
    expect(made.code, made.stderr).toBe(0);
    alice = as(made.stdout.trim());
    const v = await admin.access.createToken('viewer', { description: 'dashboard' });
    viewer = { ...as(v.token), id: v.info.id };
  });
  afterAll(() => {
    for (const c of [admin, operator?.client, alice?.client, viewer?.client]) c?.close();
  });

  it('approvals - granted from the CLI: status shows the gate, drover approve releases it, the next step sees who and why', async () => {
    const out = join(dir, 'cli-approve.out');
    const run = await openGate(admin, gated('cli-approve', 'timeout: 30m'), out);
    const gate = gateOf(run);
    expect(gate.agent).toBe('');
    expect(gate.approval).toMatchObject({ message: 'Ship app:1.2 to production?', approvers: ['operator', 'alice'], onTimeout: 'fail', decision: '' });
    expect(gate.approval!.deadline).toBeGreaterThan(Date.now() + 29 * 60_000);
    expect(gate.waiting).toMatch(/^waiting for approval by operator or alice \(times out \d\d:\d\d UTC\)$/);

    const status = await cli(['status', run.id], operator.env);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain('Approvals:');
    expect(status.stdout).toMatch(/gate: waiting for operator \(and above\) or alice; times out \d{4}-\d\d-\d\d \d\d:\d\d UTC \(onTimeout: fail\)/);
    expect(status.stdout).toContain('asks: Ship app:1.2 to production?');
    expect(status.stdout).toContain(`decide: drover approve ${run.id} gate [--reject] [--reason TEXT]`);

    const res = await cli(['approve', run.id, 'gate', '--reason', 'CHG-1042 approved'], operator.env);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(new RegExp(`^step gate of run ${run.id} approved by [0-9a-f]{12}; the run is running\\n$`));
    const done = await admin.runs.wait(run.id);
    expect(done.status).toBe('succeeded');
    const by = gateOf(done).approval!.decidedBy;
    expect(gateOf(done)).toMatchObject({ status: 'succeeded', message: `approved by ${by}: CHG-1042 approved`, outputs: { approved: 'true', decidedBy: by, reason: 'CHG-1042 approved' } });
    expect(readFileSync(out, 'utf8')).toBe(`${by}|CHG-1042 approved`);

    const after = await cli(['status', run.id], operator.env);
    expect(after.stdout).toMatch(new RegExp(`gate: approved by ${by} at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC: CHG-1042 approved`));
    const lines: string[] = [];
    for await (const l of admin.runs.logs(run.id, 'gate')) lines.push(l.text);
    expect(lines.map((l) => l.trimEnd())).toEqual([
      expect.stringMatching(/^\[drover\] waiting for approval by operator or alice \(times out \d\d:\d\d UTC\): Ship app:1\.2 to production\?$/),
      `[drover] approved by ${by}: CHG-1042 approved`,
    ]);

    const audit = (await admin.audit.list({ action: 'RunService/DecideApproval' })).filter((r) => r.target === `${run.id}/gate`);
    expect(audit).toEqual([expect.objectContaining({ actorKind: 'token', actor: by, result: 'ok', detail: { decision: 'approve', reason: 'CHG-1042 approved', id: run.id } })]);
  });

  it('approvals - rejected from the CLI: the gate fails "rejected by NAME: reason", ship never runs, the run fails', async () => {
    const out = join(dir, 'cli-reject.out');
    const run = await openGate(admin, gated('cli-reject', ''), out);
    const res = await cli(['approve', run.id.slice(0, 20), 'gate', '--reject', '--reason', 'load test first'], alice.env);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain(`step gate of run ${run.id} rejected by alice`);
    const done = await admin.runs.wait(run.id);
    expect(done.status).toBe('failed');
    expect(done.message).toBe('step gate failed: rejected by alice: load test first');
    expect(done.steps.find((s) => s.id === 'ship')!.status).toBe('skipped');
    expect(() => readFileSync(out)).toThrow();
  });

  it('approvals - granted and rejected from the SDK, by a token named in approvers and by a role', async () => {
    const a = await openGate(admin, gated('sdk-approve', ''), join(dir, 'sdk-approve.out'));
    const decided = await alice.client.runs.approve(a.id, 'gate', { reason: 'looks good' });
    expect(gateOf(decided).approval).toMatchObject({ decision: 'approved', decidedBy: 'alice', reason: 'looks good' });
    expect((await admin.runs.wait(a.id)).status).toBe('succeeded');
    expect(readFileSync(join(dir, 'sdk-approve.out'), 'utf8')).toBe('alice|looks good');

    const r = await openGate(admin, gated('sdk-reject', ''), join(dir, 'sdk-reject.out'));
    await operator.client.runs.reject(r.id, 'gate');
    const done = await admin.runs.wait(r.id);
    expect(gateOf(done)).toMatchObject({ status: 'failed', outputs: { approved: 'false', reason: '' } });
    expect(gateOf(done).message).toMatch(/^rejected by [0-9a-f]{12}$/);
  });

  it('approvals - timed out: onTimeout fail fails the run, onTimeout approve lets it go on (SDK and CLI see it)', async () => {
    const f = await openGate(admin, gated('timeout-fail', 'timeout: 2s'), join(dir, 'tf.out'));
    const failed = await admin.runs.wait(f.id);
    expect(failed.status).toBe('failed');
    expect(gateOf(failed)).toMatchObject({ message: 'no decision within 2s; the gate timed out (onTimeout: fail)', approval: { decision: 'timed-out', decidedBy: 'timeout' } });
    const st = await cli(['status', f.id], server.env);
    expect(st.stdout).toMatch(/gate: timed out at .* with no decision: failed \(onTimeout: fail\)/);

    const ok = await openGate(admin, gated('timeout-approve', 'timeout: 2s\n      onTimeout: approve'), join(dir, 'ta.out'));
    const passed = await admin.runs.wait(ok.id);
    expect(passed.status).toBe('succeeded');
    expect(gateOf(passed).message).toBe('approved: no decision within 2s (onTimeout: approve)');
    expect(readFileSync(join(dir, 'ta.out'), 'utf8')).toBe('timeout|');
    const late = await cli(['approve', ok.id, 'gate'], operator.env);
    expect(late.code).not.toBe(0);
    expect(late.stderr).toMatch(/step gate of run .* was already timed out at .* and succeeded/);
  });

  it('approvals - a viewer not among the approvers is refused, naming who may decide; the gate stays open and the refusal is audited', async () => {
    const run = await openGate(admin, gated('refused', ''), join(dir, 'refused.out'));
    const err = await viewer.client.runs.approve(run.id, 'gate').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermissionDeniedError);
    expect((err as Error).message).toBe(`only operator (and above) or token alice may decide step gate of run ${run.id}; token ${viewer.id} (viewer) is not among its approvers`);
    const res = await cli(['approve', run.id, 'gate', '--reject'], viewer.env);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain('only operator (and above) or token alice may decide step gate');
    expect(gateOf(await admin.runs.get(run.id))).toMatchObject({ status: 'running', approval: { decision: '' } });
    const audit = (await admin.audit.list({ action: 'RunService/DecideApproval' })).filter((r) => r.target === `${run.id}/gate`);
    expect(audit.map((r) => [r.actor, r.result, r.detail.decision])).toEqual([
      [viewer.id, 'PERMISSION_DENIED', 'approve'],
      [viewer.id, 'PERMISSION_DENIED', 'reject'],
    ]);
    await admin.runs.cancel(run.id, 'test over');
    const cancelled = await admin.runs.wait(run.id);
    expect(gateOf(cancelled)).toMatchObject({ status: 'cancelled', message: 'test over' });
  });

  it('approvals - what cannot be decided: a gate not open yet, a decided one, a step that is no gate, an unknown step, a finished run', async () => {
    const hold = join(dir, 'hold');
    const file = workflowFile(
      dir,
      'slow.yaml',
      `name: slow\nparams: { hold: { type: string } }\nsteps:\n  - { id: build, run: 'for i in $(seq 200); do [ -f "$HOLD" ] && break; sleep 0.1; done', env: { HOLD: "\${{ params.hold }}" } }\n  - { id: gate, needs: [build], approval: { approvers: [operator] } }\n`,
    );
    const run = await admin.runs.launch(file, { hold });
    const notOpen = await operator.client.runs.approve(run.id, 'gate').catch((e: unknown) => e);
    expect(notOpen).toBeInstanceOf(ApprovalNotOpenError);
    expect((notOpen as Error).message).toBe(`step gate of run ${run.id} is not open yet: it waits for build`);
    const noGate = await operator.client.runs.approve(run.id, 'build').catch((e: unknown) => e);
    expect(noGate).toBeInstanceOf(InvalidInputError);
    expect((noGate as Error).message).toBe(`step build of run ${run.id} is a run step, not an approval step`);
    const unknown = await cli(['approve', run.id, 'nope'], operator.env);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain(`run ${run.id} has no step "nope"`);
    workflowFile(dir, 'hold', 'go');
    await waitFor(async () => gateOf(await admin.runs.get(run.id)).status === 'running', 20_000, () => 'the gate to open');
    await operator.client.runs.approve(run.id, 'gate', { reason: 'first' });
    const again = await operator.client.runs.reject(run.id, 'gate').catch((e: unknown) => e);
    expect(again).toBeInstanceOf(ApprovalDecidedError);
    expect((again as Error).message).toMatch(new RegExp(`^step gate of run ${run.id} was already approved by [0-9a-f]{12} at \\d\\d:\\d\\d UTC \\(first\\)$`));
    expect((await admin.runs.wait(run.id)).status).toBe('succeeded');
  });
});

describe('approvals - a control plane restarted while a run waits', () => {
  it('approvals - SIGKILL of drover server while the gate is open: after the restart it still waits, same deadline; the approval then finishes the run', async () => {
    const first = await startServer();
    const agent = startAgent(first, 'appr-restart');
    let admin = new DroverClient(first.clientOptions);
    await waitFor(async () => (await admin.fleet.list()).some((a) => a.state === 'connected'), 20_000, () => `agent:\n${agent.output()}`);
    const out = join(dir, 'restart.out');
    const run = await openGate(admin, gated('restart', 'timeout: 1h'), out);
    const deadline = gateOf(run).approval!.deadline;
    admin.close();

    // The server's own pid (dist/control-plane/main.js is the service process, no wrapper).
    first.child.kill('SIGKILL');
    await new Promise<void>((r) => (first.child.exitCode !== null || first.child.signalCode !== null ? r() : first.child.once('exit', () => r())));
    const second = await startServer({ dataDir: first.dataDir, listen: first.address });
    admin = new DroverClient(second.clientOptions);
    try {
      await waitFor(async () => (await admin.fleet.list()).some((a) => a.state === 'connected'), 30_000, () => `agent to reconnect:\n${agent.output()}`);
      const after = await admin.runs.get(run.id);
      expect(after.status).toBe('running');
      expect(gateOf(after)).toMatchObject({ status: 'running', approval: { deadline, decision: '', message: 'Ship app:1.2 to production?' } });
      expect(gateOf(after).waiting).toMatch(/^waiting for approval by operator or alice \(times out \d\d:\d\d UTC\)$/);
      const res = await cli(['approve', run.id, 'gate', '--reason', 'after the restart'], second.env);
      expect(res.code, res.stderr).toBe(0);
      const done = await admin.runs.wait(run.id);
      expect(done.status).toBe('succeeded');
      expect(readFileSync(out, 'utf8')).toMatch(/^[0-9a-f]{12}\|after the restart$/);
    } finally {
      admin.close();
    }
  });
});
