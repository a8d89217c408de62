/**
 * NATS triggers against a real nats-server (with the accounts of `drover
 * server nats-config`), a real `drover server --nats` and a real agent: an
 * event publisher with credentials from `drover server nats-creds` starts
 * runs by request and by plain publish, a repeat starts nothing, bodies
 * that do not fit are answered with the problem, its credentials reach no
 * other subject, and a workflow that drops the trigger stops listening.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { connect as natsConnect, credsAuthenticator, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DroverClient } from '../../sdk/index.js';
import { downSubject } from '../../proto/nats.js';
import { ENTRY, cli, startAgent, startServer, tempDir, waitFor, workflowFile, type ServerProc } from '../helpers/cluster.js';
import { startNatsServer } from '../helpers/nats.js';

const dir = tempDir('drover-nats-triggers-');
const effects = join(dir, 'effects');
let files = 0;
/** A workflow file of its own for each call (apply reads the file when called). */
const ALARM = (trigger: string) =>
  workflowFile(
    dir,
    `alarm-${++files}.yaml`,
    `name: alarm
params:
  site: { type: string, pattern: "^[a-z]{3}[0-9]$" }
  rack: { type: string, default: none }
${trigger}
steps:
  - id: page
    target: { labels: { role: ops } }
    run: echo "$SITE $RACK" >> "${effects}"
    env: { SITE: "\${{ params.site }}", RACK: "\${{ params.rack }}" }
`,
  );
const WITH_TRIGGER = ALARM(`triggers:
  - nats: { subject: "alarms.>", params: { site: "body.site", rack: "subject.split('.')[1]" }, idempotencyKey: "body.id" }`);

interface Reply {
  results: ({ workflow: string; runId: string; deduplicated: boolean } | { workflow: string; error: { code: string; message: string; hint: string; problems?: { path: string; message: string }[] } })[];
}

describe('nats triggers - messages start runs', () => {
  let server: ServerProc;
  let admin: DroverClient;
  let pub: NatsConnection;
  let natsUrl: string;
  let credsText: string;
  const dataDir = tempDir('drover-nats-triggers-server-');
  const violations: string[] = [];

  const request = async (subject: string, body: string, timeout = 10_000): Promise<Reply> => JSON.parse(new TextDecoder().decode((await pub.request(subject, body, { timeout })).data)) as Reply;

  beforeAll(async () => {
    const conf = spawnSync(process.execPath, [ENTRY.server, 'nats-config', '--data-dir', dataDir], { encoding: 'utf8' });
    expect(conf.status, conf.stderr).toBe(0);
    const nats = await startNatsServer({ config: conf.stdout });
    natsUrl = nats.url;
    server = await startServer({ dataDir, args: ['--nats', nats.url, '--heartbeat-interval-ms', '500'] });
    admin = new DroverClient(server.clientOptions);
    startAgent(server, 'ops-1', { role: 'ops' });
    await waitFor(async () => (await admin.fleet.list()).some((a) => a.state === 'connected'), 30_000, () => 'the agent to connect');
    await admin.workflows.apply(WITH_TRIGGER);
    const creds = spawnSync(process.execPath, [ENTRY.server, 'nats-creds', '--data-dir', dataDir, '--name', 'alarm-relay', '--publish', 'alarms.>', '--expires', '1h'], { encoding: 'utf8' });
    expect(creds.status, creds.stderr).toBe(0);
    expect(creds.stdout).toMatch(/BEGIN NATS USER JWT/);
    credsText = creds.stdout;
    pub = await natsConnect({ servers: nats.url, inboxPrefix: '_INBOX.alarm-relay', authenticator: credsAuthenticator(new TextEncoder().encode(creds.stdout)) });
    void (async () => {
      for await (const s of pub.status()) if (s.type === 'error') violations.push(String(s.error?.message ?? s.error));
    })();
  });
  afterAll(async () => {
    await pub?.close();
    admin?.close();
  });

  it('nats - a request starts a run with the mapped params and is answered with its id once stored; a repeat answers the same run', async () => {
    // The subscription is made as the workflow is applied; until then a request may find no responder.
    const reply = await waitFor(() => request('alarms.r4', JSON.stringify({ site: 'ber1', id: 'a-1' })).catch(() => undefined), 15_000, () => 'the trigger to answer');
    expect(reply.results).toHaveLength(1);
    const first = reply.results[0];
    expect(first).toMatchObject({ workflow: 'alarm', deduplicated: false });
    const runId = 'runId' in first ? first.runId : '';
    const run = await admin.runs.get(runId);
    expect(run.trigger).toBe('nats:alarms.r4');
    expect(run.idempotencyKey).toBe('a-1');
    expect(run.params).toMatchObject({ site: 'ber1', rack: 'r4' });
    expect((await admin.runs.wait(runId)).status).toBe('succeeded');
    expect(readFileSync(effects, 'utf8')).toBe('ber1 r4\n');

    const again = await request('alarms.r4', JSON.stringify({ site: 'ber1', id: 'a-1' }));
    expect(again.results).toEqual([{ workflow: 'alarm', runId, deduplicated: true }]);
    expect((await admin.runs.list({ workflow: 'alarm' })).filter((r) => r.idempotencyKey === 'a-1')).toHaveLength(1);

    const audit = await admin.audit.list({ action: 'nats.deliver' });
    expect(audit.filter((r) => r.detail.id === runId).map((r) => [`${r.actorKind}:${r.actor}`, r.target, r.result, r.detail.deduplicated ?? ''])).toEqual([
      ['nats:alarms.r4', 'alarm', 'ok', ''],
      ['nats:alarms.r4', 'alarm', 'ok', 'true'],
    ]);
  });

  it('nats - a plain publish starts a run too; Nats-Msg-Id keys it when the trigger gives no key', async () => {
    const before = (await admin.runs.list({ workflow: 'alarm' })).length;
    pub.publish('alarms.r7', JSON.stringify({ site: 'fra2', id: 'a-7' }));
    await waitFor(async () => (await admin.runs.list({ workflow: 'alarm' })).find((r) => r.idempotencyKey === 'a-7'), 10_000, () => 'a run from the plain publish');
    expect((await admin.runs.list({ workflow: 'alarm' })).length).toBe(before + 1);

    // A trigger without idempotencyKey: the header is the key.
    await admin.workflows.apply(ALARM(`triggers:\n  - nats: { subject: "alarms.>", params: { site: "body.site" } }`));
    const h = natsHeaders();
    h.set('Nats-Msg-Id', 'msg-9');
    const send = () => pub.request('alarms.r9', JSON.stringify({ site: 'ams3' }), { timeout: 10_000, headers: h }).then((m) => JSON.parse(new TextDecoder().decode(m.data)) as Reply);
    const a = await send();
    const b = await send();
    expect(a.results[0]).toMatchObject({ deduplicated: false });
    expect(b.results[0]).toEqual({ ...a.results[0], deduplicated: true });
    expect((await admin.runs.list({ workflow: 'alarm' })).filter((r) => r.idempotencyKey === 'msg-9')).toHaveLength(1);
    await admin.workflows.apply(WITH_TRIGGER);
  });

  it('nats - a body that is not JSON, misses a param or has no key is answered with the problem and starts nothing', async () => {
    const before = (await admin.runs.list({ workflow: 'alarm' })).length;
    const notJson = await request('alarms.r1', 'site=ber1');
    expect(notJson.results[0]).toMatchObject({ workflow: 'alarm', error: { code: 'INVALID_JSON' } });
    const noSite = await request('alarms.r1', JSON.stringify({ id: 'a-2' }));
    const err = 'error' in noSite.results[0] ? noSite.results[0].error : undefined;
    expect(err?.code).toBe('INVALID_PARAMS');
    expect(err?.problems?.map((p) => p.path)).toContain('params.site');
    expect(err?.problems?.find((p) => p.path === 'params.site')?.message).toMatch(/maps it from body\.site/);
    const badSite = await request('alarms.r1', JSON.stringify({ id: 'a-3', site: 'BERLIN' }));
    expect('error' in badSite.results[0] && badSite.results[0].error.problems?.[0].path).toBe('params.site');
    const noKey = await request('alarms.r1', JSON.stringify({ site: 'ber1' }));
    expect(noKey.results[0]).toMatchObject({ error: { code: 'INVALID_INPUT' } });
    expect((await admin.runs.list({ workflow: 'alarm' })).length).toBe(before);
    // A retry with a fixed body then starts its run: the refusal kept no key.
    const fixed = await request('alarms.r1', JSON.stringify({ id: 'a-2', site: 'ber1' }));
    expect(fixed.results[0]).toMatchObject({ deduplicated: false });
  });

  it("nats - the publisher's credentials reach only its subjects: not the agents' link, not other events", async () => {
    pub.publish(downSubject('ops-1'), 'x');
    pub.publish('payroll.run', JSON.stringify({ site: 'ber1', id: 'p-1' }));
    // Neither the events it sends nor other publishers' answers (their inboxes) can it read.
    for (const subject of ['alarms.>', '_INBOX.hr-system.>']) {
      const subErr = await new Promise<Error | null>((res) => {
        pub.subscribe(subject, { callback: (e) => res(e) });
        setTimeout(() => res(null), 3000);
      });
      expect(String(subErr), subject).toMatch(/permissions violation/i);
    }
    await waitFor(() => violations.filter((v) => /publish to "(drover\.v1\.agent\.ops-1\.down|payroll\.run)"/i.test(v)).length >= 2, 10_000, () => `two publish violations (${violations.join('; ')})`);
    expect((await admin.fleet.list()).find((a) => a.name === 'ops-1')?.state).toBe('connected');

    // Credentials for the control plane's own subjects are refused when asked for.
    for (const subject of ['drover.v1.agent.ops-1.down', '>', '*.x', 'a..b']) {
      const r = spawnSync(process.execPath, [ENTRY.server, 'nats-creds', '--data-dir', dataDir, '--name', 'x', '--publish', subject], { encoding: 'utf8' });
      expect(r.status, subject).toBe(1);
      expect(r.stderr, subject).toMatch(/error: drover server nats-creds: .*"/);
      expect(r.stdout).toBe('');
    }
  });

  it('nats - the Node sender printed in docs/triggers.md works as it stands', async () => {
    const doc = readFileSync(join(import.meta.dirname, '../../docs/triggers.md'), 'utf8');
    const block = /```js\n(import \{ connect, credsAuthenticator \}[\s\S]*?)```/.exec(doc)?.[1];
    expect(block, 'the NATS sender in docs/triggers.md').toBeTruthy();
    writeFileSync(join(dir, 'alarm-relay.creds'), credsText);
    // Only the server's address and the credentials file's path change.
    const js = block!.replace('nats://nats.example:4222', natsUrl).replace("readFileSync('alarm-relay.creds')", `readFileSync(${JSON.stringify(join(dir, 'alarm-relay.creds'))})`);
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', js], { encoding: 'utf8', cwd: join(import.meta.dirname, '../..'), timeout: 20_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/workflow: 'alarm',\s+runId: 'r-\S+',\s+deduplicated: false/);
  });

  it('nats - apply refuses a subject that would reach the agents, and a trigger dropped from the workflow stops listening', async () => {
    const bad = await cli(['workflow', 'apply', ALARM(`triggers:\n  - nats: { subject: "drover.v1.agent.>", params: { site: "body.site" } }`)], server.env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/triggers\[0\]\.nats\.subject.*belongs to drover/s);
    await admin.workflows.apply(ALARM(''));
    await waitFor(() => request('alarms.r4', JSON.stringify({ site: 'ber1', id: 'a-99' }), 2000).then(() => false, (e: Error) => /no responders|503/i.test(e.message)), 10_000, () => 'the subscription to go');
    await admin.workflows.apply(WITH_TRIGGER);
    const back = await waitFor(() => request('alarms.r4', JSON.stringify({ site: 'ber1', id: 'a-100' }), 2000).catch(() => undefined), 10_000, () => 'the subscription to come back');
    expect(back.results[0]).toMatchObject({ deduplicated: false });
    expect(natsUrl).toMatch(/^nats:\/\/127\.0\.0\.1:/);
  });
});
