import { existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DroverClient, IdempotencyKeyReusedError, NotRerunnableError, RunNotFinishedError, RunNotFoundError, StepNotFoundError, type Run } from '../../sdk/index.js';
import { cli, startAgent, startServer, tempDir, waitFor, workflowFile, type ServerProc } from '../helpers/cluster.js';

let server: ServerProc;
let client: DroverClient;
const dir = tempDir('drover-rerun-');
const count = (name: string) => (existsSync(join(dir, name)) ? readFileSync(join(dir, name), 'utf8').split('\n').filter(Boolean).length : 0);
const step = (r: Run, id: string) => r.steps.find((s) => s.id === id)!;

beforeAll(async () => {
  server = await startServer();
  for (const name of ['web-1', 'web-2', 'web-3']) startAgent(server, name, { pool: 'edge' });
  client = new DroverClient(server.clientOptions);
  await waitFor(async () => (await client.fleet.list()).filter((a) => a.state === 'connected').length === 3, 20_000, () => 'three agents');
});

afterAll(() => client?.close());

// Each step counts its executions in a file named after it; `one` outputs its run's id, which `three` passes on.
const CHAIN = workflowFile(
  dir,
  'chain.yaml',
  `name: chain
params: { dir: {} }
steps:
  - id: one
    target: { agent: web-1 }
    env: { DIR: "\${{ params.dir }}" }
    run: 'echo x >> "$DIR/one"; echo "uid=$DROVER_RUN_ID" >> "$DROVER_OUTPUT"'
  - id: two
    needs: [one]
    target: { labels: { pool: edge } }
    env: { DIR: "\${{ params.dir }}" }
    run: 'echo x >> "$DIR/two"; [ ! -e "$DIR/fail-two" ]'
  - id: three
    needs: [one, two]
    target: { agent: web-3 }
    env: { DIR: "\${{ params.dir }}", UID_OF_ONE: "\${{ steps.one.outputs.uid }}" }
    run: 'echo x >> "$DIR/three"; echo "seen=$UID_OF_ONE" >> "$DROVER_OUTPUT"'
`,
);

describe('rerun - from a step', () => {
  it('rerun - --from the 2nd step runs the 2nd and 3rd again only, and the 3rd sees the 1st step\'s outputs from the old run', async () => {
    const old = await (await client.runs.launch(CHAIN, { dir })).wait();
    expect(old.status).toBe('succeeded');
    expect([count('one'), count('two'), count('three')]).toEqual([1, 1, 1]);

    const res = await cli(['rerun', old.id.slice(0, -2), '--from', 'two', '--follow'], server.env);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const id = /run (r-\S+) started \(chain, a re-run of (\S+); 1 of 3 steps reused from \S+\)/.exec(res.stdout);
    expect(id?.[2], res.stdout).toBe(old.id);
    expect(res.stdout).toMatch(/one\s+succeeded\s+reused from r-\S+ \(not run again\)/);
    expect([count('one'), count('two'), count('three')]).toEqual([1, 2, 2]);

    const again = await client.runs.get(id![1]);
    expect(again).toMatchObject({ status: 'succeeded', rerunOf: old.id, planHash: old.planHash, params: old.params, workflowVersion: old.workflowVersion });
    expect(step(again, 'one')).toMatchObject({ status: 'succeeded', reusedFrom: old.id, outputs: { uid: old.id } });
    expect(step(again, 'two').reusedFrom).toBe('');
    expect(step(again, 'three').outputs).toEqual({ seen: old.id });

    const status = await cli(['status', again.id], server.env);
    expect(status.stdout).toContain(`Re-run of: ${old.id} (1 step reused from it, not run again)`);
    expect(status.stdout).toMatch(/\none\s+web-1\s+succeeded \(reused\)/);
    expect(status.stdout).toMatch(/\nthree\s+web-3\s+succeeded\s+1\s/);
  });

  it('rerun - no option runs every step again; --failed-only after a fix runs the failed step and what follows', async () => {
    writeFileSync(join(dir, 'fail-two'), '');
    const before = [count('one'), count('two'), count('three')];
    const failed = await (await client.runs.launch(CHAIN, { dir })).wait();
    expect(failed.status).toBe('failed');
    expect(step(failed, 'three').status).toBe('skipped');
    unlinkSync(join(dir, 'fail-two'));

    const fixed = await (await client.runs.rerun(failed.id, { failedOnly: true })).wait();
    expect(fixed.status).toBe('succeeded');
    expect(step(fixed, 'one').reusedFrom).toBe(failed.id);
    expect(step(fixed, 'three').outputs).toEqual({ seen: failed.id });
    const all = await (await client.runs.rerun(fixed.id)).wait();
    expect(all.status).toBe('succeeded');
    expect(all.steps.every((s) => !s.reusedFrom)).toBe(true);
    expect(step(all, 'three').outputs).toEqual({ seen: all.id });
    // failed: 1, 1, 0; failed-only: 0, 1, 1; all: 1, 1, 1.
    expect([count('one'), count('two'), count('three')]).toEqual([before[0] + 2, before[1] + 3, before[2] + 2]);
  });
});

describe('rerun - failed fan-out instances', () => {
  it('rerun - --failed-only runs only the instance that failed, on its agent, and the run succeeds', async () => {
    const file = workflowFile(
      dir,
      'fan.yaml',
      `name: fan
params: { dir: {} }
steps:
  - id: prep
    target: { agent: web-1 }
    env: { DIR: "\${{ params.dir }}" }
    run: 'echo x >> "$DIR/prep"'
  - id: deploy
    needs: [prep]
    target: { labels: { pool: edge }, strategy: all }
    env: { DIR: "\${{ params.dir }}" }
    # web-2 fails its first execution only
    run: 'echo x >> "$DIR/deploy-$DROVER_AGENT"; [ "$DROVER_AGENT" != web-2 ] || [ "$(wc -l < "$DIR/deploy-$DROVER_AGENT")" -gt 1 ]'
  - id: verify
    needs: [deploy]
    target: { agent: web-3 }
    env: { DIR: "\${{ params.dir }}" }
    run: 'echo x >> "$DIR/verify"'
`,
    );
    const old = await (await client.runs.launch(file, { dir })).wait();
    expect(old.status).toBe('failed');
    expect(step(old, 'deploy[web-2]').status).toBe('failed');
    expect(step(old, 'verify').status).toBe('skipped');

    const res = await cli(['rerun', old.id, '--failed-only', '--follow'], server.env);
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).toContain('3 of 5 steps reused from');
    const id = /run (r-\S+) started/.exec(res.stdout)![1];
    const again = await client.runs.get(id);
    expect(again.status).toBe('succeeded');
    expect(Object.fromEntries(again.steps.map((s) => [s.id, s.reusedFrom ? 'reused' : s.status]))).toEqual({
      prep: 'reused',
      deploy: 'succeeded',
      'deploy[web-1]': 'reused',
      'deploy[web-2]': 'succeeded',
      'deploy[web-3]': 'reused',
      verify: 'succeeded',
    });
    expect(step(again, 'deploy[web-2]').agent).toBe('web-2');
    expect([count('prep'), count('deploy-web-1'), count('deploy-web-2'), count('deploy-web-3'), count('verify')]).toEqual([1, 1, 2, 1, 1]);
  });
});

describe('rerun - refusals', () => {
  it('rerun - an active run, an unknown step, both modes at once and an unknown run are refused with clear errors', async () => {
    const file = workflowFile(dir, 'slow.yaml', 'name: slow\nsteps:\n  - { id: wait, target: { agent: web-1 }, run: "sleep 30" }\n');
    const slow = await client.runs.launch(file);
    const active = await cli(['rerun', slow.id], server.env);
    expect(active.code).toBe(1);
    expect(active.stderr).toContain(`error: run ${slow.id} is still running; only a finished run can be re-run`);
    expect(active.stderr).toContain(`hint: wait for it (drover status ${slow.id} --watch) or cancel it (drover cancel ${slow.id})`);
    await expect(client.runs.rerun(slow.id)).rejects.toBeInstanceOf(RunNotFinishedError);
    await slow.cancel();
    await slow.wait();

    const unknown = await cli(['rerun', slow.id, '--from', 'wiat'], server.env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain(`error: run ${slow.id} has no step "wiat" (did you mean "wait"?)`);
    await expect(client.runs.rerun(slow.id, { from: 'nope' })).rejects.toBeInstanceOf(StepNotFoundError);

    const both = await cli(['rerun', slow.id, '--from', 'wait', '--failed-only'], server.env);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--from and --failed-only do not go together');

    await expect(client.runs.rerun('r-000000-000000-00000000')).rejects.toBeInstanceOf(RunNotFoundError);
    expect((await client.runs.list({ workflow: 'slow' })).length).toBe(1);
  });

  it('rerun - a run whose steps use a secret param is refused: its value is gone once the run ended', async () => {
    const file = workflowFile(
      dir,
      'secret.yaml',
      'name: secret-param\nparams: { token: { secret: true } }\nsteps:\n  - { id: use, target: { agent: web-1 }, env: { T: "${{ params.token }}" }, run: "true" }\n',
    );
    const old = await (await client.runs.launch(file, { token: 's3cr3t' })).wait();
    expect(old.status).toBe('succeeded');
    const err = await client.runs.rerun(old.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotRerunnableError);
    expect((err as Error).message).toBe(`step use of run ${old.id} uses the secret param token, whose value is not kept after a run ends`);
    const res = await cli(['rerun', old.id], server.env);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('hint: launch the workflow anew with -p (or --param-file) token=...');
  });

  it('rerun - the same idempotency key starts one re-run; the record survives a control-plane SIGKILL and restart', async () => {
    const file = workflowFile(dir, 'quick.yaml', 'name: quick\nsteps:\n  - { id: a, target: { agent: web-2 }, run: "echo v=1 >> $DROVER_OUTPUT" }\n  - { id: b, needs: [a], target: { agent: web-3 }, run: "true" }\n');
    const old = await (await client.runs.launch(file)).wait();
    const [x, y] = await Promise.all([client.runs.rerun(old.id, { from: 'b', idempotencyKey: 'k-1' }), client.runs.rerun(old.id, { from: 'b', idempotencyKey: 'k-1' })]);
    expect(x.id).toBe(y.id);
    expect([x.run.deduplicated, y.run.deduplicated].sort()).toEqual([false, true]);
    const cliAgain = await cli(['rerun', old.id, '--from', 'b', '--idempotency-key', 'k-1'], server.env);
    expect(cliAgain.stdout).toContain(`run ${x.id} was started before with this idempotency key (a re-run of ${old.id}); nothing new was started`);
    const done = await x.wait();
    expect(done.status).toBe('succeeded');
    expect((await client.runs.list({ workflow: 'quick' })).length).toBe(2);
    const audited = (await client.audit.list({ limit: 1000 })).filter((r) => r.action === 'RunService/RerunRun' && r.target === old.id);
    expect(audited.map((r) => [r.result, r.detail.id])).toEqual([
      ['ok', x.id],
      ['ok', x.id],
      ['ok', x.id],
    ]);

    client.close();
    await server.stop('SIGKILL');
    const restarted = await startServer({ dataDir: server.dataDir });
    server = { ...restarted, enrollToken: server.enrollToken };
    client = new DroverClient(server.clientOptions);
    const kept = await client.runs.get(done.id);
    expect(kept).toMatchObject({ status: 'succeeded', rerunOf: old.id });
    expect(step(kept, 'a')).toMatchObject({ reusedFrom: old.id, outputs: { v: '1' } });
    // The key outlived the restart; it cannot stand for a re-run of another run, or for a launch.
    const after = await client.runs.rerun(old.id, { from: 'b', idempotencyKey: 'k-1' });
    expect([after.id, after.run.deduplicated]).toEqual([x.id, true]);
    const other = await client.runs.rerun(done.id, { idempotencyKey: 'k-1' }).catch((e: Error) => e);
    expect(other).toBeInstanceOf(IdempotencyKeyReusedError);
    expect((other as Error).message).toBe(`idempotency key "k-1" of quick already started run ${x.id}, which is not this re-run of ${done.id} (all); nothing was started`);
    await expect(client.runs.rerun(old.id, { failedOnly: true, idempotencyKey: 'k-1' })).rejects.toBeInstanceOf(IdempotencyKeyReusedError);
    await expect(client.runs.launch(file, {}, { idempotencyKey: 'k-1' })).rejects.toBeInstanceOf(IdempotencyKeyReusedError);
    expect((await client.runs.list({ workflow: 'quick' })).length).toBe(2);
  });
});
