/**
 * Webhooks and idempotent launch against a real `drover server` (plain HTTP
 * on 127.0.0.1) and a real agent: signed deliveries posted as an HR system
 * would (retries re-signed, a replay, stale and bad signatures), bodies that
 * do not fit, limits, a SIGKILL of the control plane between deliveries; and
 * idempotent launch from the SDK and the CLI.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DroverClient, IdempotencyKeyReusedError } from '../../sdk/index.js';
import { signatureHeader } from '../../control-plane/triggers/signature.js';
import { cli, startAgent, startServer, tempDir, waitFor, workflowFile, type ServerProc } from '../helpers/cluster.js';
import { dashboardUrl } from '../helpers/http-port.js';

const dir = tempDir('drover-hooks-');
const SECRET = 'hr-hook-secret-value';
const HR = workflowFile(
  dir,
  'hr.yaml',
  `name: hr-onboard
params:
  username: { type: string, pattern: "^[a-z][a-z0-9-]{1,31}$" }
  role: { type: string, enum: [engineer, sales], default: engineer }
triggers:
  - webhook:
      name: hr-new-hire
      secret: HR_HOOK_SECRET
      params: { username: "body.user.login", role: "body.user.role" }
      idempotencyKey: "body.event_id"
steps:
  - id: greet
    target: { labels: { role: w } }
    run: echo "hello $U"
    env: { U: "\${{ params.username }}" }
`,
);

interface Answer {
  status: number;
  body: { runId?: string; deduplicated?: boolean; error?: { code: string; message: string; hint: string; problems?: { path: string; message: string }[] } };
  headers: Record<string, string | string[] | undefined>;
}

/** POSTs `body` to /hooks/<name>; `sign` adds X-Drover-Signature for t (default now). */
function post(base: string, name: string, body: string | Buffer, opts: { t?: number; secret?: string; signature?: string; type?: string; method?: string } = {}): Promise<Answer> {
  const url = new URL(base);
  const t = opts.t ?? Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = { 'content-type': opts.type ?? 'application/json' };
  const sig = opts.signature ?? signatureHeader(opts.secret ?? SECRET, t, body);
  if (sig) headers['x-drover-signature'] = sig;
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path: `/hooks/${name}`, method: opts.method ?? 'POST', headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Answer['body']) : {}, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const event = (id: string, login: string, role = 'engineer', extra: Record<string, unknown> = {}) => JSON.stringify({ event_id: id, user: { login, role }, ...extra });

describe('webhooks - signed deliveries start runs', () => {
  let server: ServerProc;
  let admin: DroverClient;
  let base: string;
  const dataDir = tempDir('drover-hooks-server-');
  const args = ['--http', '127.0.0.1:0', '--http-plain', '--heartbeat-interval-ms', '500'];

  beforeAll(async () => {
    server = await startServer({ dataDir, args });
    base = await dashboardUrl(server);
    admin = new DroverClient(server.clientOptions);
    startAgent(server, 'w-1', { role: 'w' });
    await waitFor(async () => (await admin.fleet.list()).some((a) => a.state === 'connected'), 30_000, () => 'the agent to connect');
  });
  afterAll(() => admin?.close());

  it('webhooks - apply warns while the secret is not stored, and the hook answers 503 naming it', async () => {
    const res = await cli(['workflow', 'apply', HR], server.env);
    expect(res.code).toBe(0);
    expect(res.stderr).toBe('warning: hr-onboard: webhook "hr-new-hire" answers 503 until its secret is stored: drover secret set HR_HOOK_SECRET\n');
    const a = await post(base, 'hr-new-hire', event('e-0', 'zed'));
    expect(a.status).toBe(503);
    expect(a.body.error).toEqual({
      code: 'WEBHOOK_SECRET_MISSING',
      message: 'webhook "hr-new-hire" cannot check signatures: its secret HR_HOOK_SECRET is not stored on the control plane',
      hint: 'an admin stores it with `drover secret set HR_HOOK_SECRET` (the value on stdin)',
    });
    await admin.secrets.set('HR_HOOK_SECRET', SECRET);
    expect((await admin.workflows.apply(HR)).warnings).toBeUndefined();
  });

  it('webhooks - a good delivery starts a run (202), a re-signed retry answers it (200 deduplicated), a replay is 409', async () => {
    const body = event('evt-1001', 'alice', 'sales');
    const t = Math.floor(Date.now() / 1000);
    const first = await post(base, 'hr-new-hire', body, { t });
    expect(first.status).toBe(202);
    expect(Object.keys(first.body)).toEqual(['runId']);
    const runId = first.body.runId!;
    // The HR system did not see the answer and retries: a new signature (t), the same event.
    const retry = await post(base, 'hr-new-hire', body, { t: t - 1 });
    expect(retry).toMatchObject({ status: 200, body: { runId, deduplicated: true } });
    // Someone captured the first request and sends it again.
    const replay = await post(base, 'hr-new-hire', body, { t });
    expect(replay.status).toBe(409);
    expect(replay.body.error).toMatchObject({ code: 'WEBHOOK_REPLAYED', message: `this signature (t=${t}) was accepted before: a replayed delivery is refused` });
    const run = await admin.runs.wait(runId);
    expect(run).toMatchObject({ status: 'succeeded', trigger: 'webhook:hr-new-hire', idempotencyKey: 'evt-1001', params: { username: 'alice', role: 'sales' } });
    expect((await admin.runs.list({ workflow: 'hr-onboard' })).filter((r) => r.idempotencyKey === 'evt-1001')).toHaveLength(1);
    const audit = await admin.audit.list({ action: 'webhook.deliver' });
    expect(audit.filter((r) => r.detail.id === runId).map((r) => [`${r.actorKind}:${r.actor}`, r.target, r.result, r.detail.deduplicated ?? ''])).toEqual([
      ['webhook:hr-new-hire', 'hr-onboard', 'ok', ''],
      ['webhook:hr-new-hire', 'hr-onboard', 'ok', 'true'],
    ]);
  });

  it('webhooks - the senders printed in docs/triggers.md work as they stand: curl + openssl and Node, then their retries are deduplicated', async () => {
    const doc = readFileSync(join(import.meta.dirname, '../../docs/triggers.md'), 'utf8');
    const block = (title: string) => {
      const m = new RegExp(`### ${title}\\n\\n\`\`\`(?:sh|js)\\n([\\s\\S]*?)\`\`\``).exec(doc);
      if (!m) throw new Error(`docs/triggers.md has no "### ${title}" code block`);
      return m[1];
    };
    const url = base.replace(/\/$/, '');
    // Only the secret, the address and the event id change; everything else runs as printed.
    const sh = block('Sender in shell')
      .replace("SECRET='the value stored with drover secret set HR_HOOK_SECRET'", `SECRET='${SECRET}'`)
      .replaceAll('https://drover.example:7401', url)
      .replace('evt-1001', 'evt-docs-sh');
    expect(sh).toContain(`${url}/hooks/hr-new-hire`);
    const runSh = () => {
      const r = spawnSync('bash', ['-c', sh], { encoding: 'utf8', cwd: dir, timeout: 20_000 });
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as Answer['body'];
    };
    const first = runSh();
    expect(first.runId).toMatch(/^r-/);
    // A retry a second later is signed anew (T is the current time): the same event, no new run.
    await new Promise((r) => setTimeout(r, 1100));
    expect(runSh()).toEqual({ runId: first.runId, deduplicated: true });

    const js = block('Sender in Node').replaceAll('https://drover.example:7401', url).replace("'evt-1001'", "'evt-docs-node'");
    const runJs = () => {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', js], { encoding: 'utf8', env: { ...process.env, HR_HOOK_SECRET: SECRET }, timeout: 20_000 });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout.trim();
    };
    const out = runJs();
    expect(out).toMatch(/^202 \{ runId: 'r-\S+' \}$/);
    await new Promise((r) => setTimeout(r, 1100));
    expect(runJs()).toMatch(/^200 \{ runId: 'r-\S+', deduplicated: true \}$/);
    expect((await admin.runs.wait(first.runId!)).status).toBe('succeeded');
  });

  it('webhooks - stale, future, wrong and missing signatures are 401 with the reason; nothing starts', async () => {
    const before = (await admin.runs.list({ workflow: 'hr-onboard' })).length;
    const body = event('evt-2', 'bob');
    const now = Math.floor(Date.now() / 1000);
    const cases: [Parameters<typeof post>[3], RegExp][] = [
      [{ t: now - 301 }, /^the signature's timestamp t=\d+ is 30\d(\.\d)? s old; at most 300 s are accepted$/],
      [{ t: now + 600 }, /is (599|600)(\.\d)? s in the future/],
      [{ secret: 'not-the-secret' }, /^no v1= signature matches the body with the hook's secret$/],
      [{ signature: '' }, /^the request carries no X-Drover-Signature header$/],
      [{ signature: `t=${now},v1=nothex` }, /malformed: a v1= entry must be 64 hex digits/],
    ];
    for (const [opts, message] of cases) {
      const a = await post(base, 'hr-new-hire', body, opts);
      expect(a.status).toBe(401);
      expect(a.body.error?.code).toBe('UNAUTHENTICATED');
      expect(a.body.error?.message).toMatch(message);
    }
    expect(await admin.runs.list({ workflow: 'hr-onboard' })).toHaveLength(before);
  });

  it('webhooks - a body that does not fit the params is 422 naming each param; the same key with other params is 409', async () => {
    const a = await post(base, 'hr-new-hire', JSON.stringify({ event_id: 'evt-3', user: { role: 'boss' } }));
    expect(a.status).toBe(422);
    expect(a.body.error?.code).toBe('INVALID_PARAMS');
    expect(a.body.error?.problems?.map((p) => p.path).sort()).toEqual(['params.role', 'params.username']);
    expect(a.body.error?.problems?.find((p) => p.path === 'params.username')?.message).toMatch(/missing param "username".*\(the webhook maps it from body\.user\.login: No such key: login\)$/);
    const noKey = await post(base, 'hr-new-hire', JSON.stringify({ user: { login: 'carol' } }));
    expect(noKey.status).toBe(422);
    expect(noKey.body.error?.message).toBe("no idempotency key: the trigger's idempotencyKey body.event_id: No such key: event_id");
    const other = await post(base, 'hr-new-hire', event('evt-1001', 'mallory'));
    expect(other.status).toBe(409);
    expect(other.body.error).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED', message: expect.stringMatching(/^idempotency key "evt-1001" of hr-onboard already started run r-\S+ with other params; nothing was started$/) });
  });

  it('webhooks - unknown hook 404, GET 405, not JSON 415, bad JSON 400, oversize 413', async () => {
    expect((await post(base, 'nope', '{}')).body.error).toMatchObject({ code: 'WEBHOOK_NOT_FOUND', message: 'no webhook named "nope" is registered' });
    const get = await post(base, 'hr-new-hire', '', { method: 'GET' });
    expect([get.status, get.headers.allow, get.body.error?.code]).toEqual([405, 'POST', 'METHOD_NOT_ALLOWED']);
    const form = await post(base, 'hr-new-hire', 'a=b', { type: 'application/x-www-form-urlencoded' });
    expect([form.status, form.body.error?.message]).toEqual([415, 'the body must be JSON (Content-Type: application/json), not "application/x-www-form-urlencoded"']);
    const bad = await post(base, 'hr-new-hire', '{"event_id": ');
    expect([bad.status, bad.body.error?.code]).toEqual([400, 'INVALID_JSON']);
    const big = await post(base, 'hr-new-hire', JSON.stringify({ event_id: 'big', pad: 'x'.repeat(1024 * 1024) }));
    expect([big.status, big.body.error?.code]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
    expect(big.body.error?.message).toMatch(/over the limit of 1048576 bytes/);
  });

  it('webhooks - eight concurrent deliveries of one event (the most one peer may send at once) start one run', async () => {
    const now = Math.floor(Date.now() / 1000);
    // Each a distinct delivery (its own attempt number, so its own signature), one event.
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => post(base, 'hr-new-hire', event('evt-c', 'dave', 'engineer', { attempt: i }), { t: now })));
    expect(answers.map((a) => a.status).sort()).toEqual([...Array(7).fill(200), 202]);
    expect(new Set(answers.map((a) => a.body.runId)).size).toBe(1);
    expect((await admin.runs.list({ workflow: 'hr-onboard' })).filter((r) => r.idempotencyKey === 'evt-c')).toHaveLength(1);
  });

  it('webhooks - a peer holding 8 deliveries open gets 429 for the next', async () => {
    const url = new URL(base);
    const held = Array.from({ length: 8 }, () => {
      const req = request({ host: url.hostname, port: url.port, path: '/hooks/hr-new-hire', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': '100' } });
      req.on('error', () => undefined);
      req.write('{');
      return req;
    });
    await new Promise((r) => setTimeout(r, 300));
    const ninth = await post(base, 'hr-new-hire', event('evt-429', 'erin'));
    expect([ninth.status, ninth.body.error?.code, ninth.headers['retry-after']]).toEqual([429, 'TOO_MANY_REQUESTS', '1']);
    for (const r of held) r.destroy();
    // Their places come back as soon as the sender is gone.
    await waitFor(async () => (await post(base, 'hr-new-hire', '{', { signature: '' })).status === 401, 5_000, () => 'the places to come back');
  });

  it('webhooks - after a SIGKILL of the control plane: the retry still answers the first run and the replay is still refused', async () => {
    const body = event('evt-k', 'frank');
    const t = Math.floor(Date.now() / 1000);
    const first = await post(base, 'hr-new-hire', body, { t });
    expect(first.status).toBe(202);
    await server.stop('SIGKILL');
    admin.close();
    server = await startServer({ dataDir, args });
    base = await dashboardUrl(server);
    admin = new DroverClient(server.clientOptions);
    expect(await post(base, 'hr-new-hire', body, { t })).toMatchObject({ status: 409, body: { error: { code: 'WEBHOOK_REPLAYED' } } });
    expect(await post(base, 'hr-new-hire', body, { t: t + 1 })).toMatchObject({ status: 200, body: { runId: first.body.runId, deduplicated: true } });
    expect((await admin.runs.list({ workflow: 'hr-onboard' })).filter((r) => r.idempotencyKey === 'evt-k')).toHaveLength(1);
  });

  it('idempotent launch - SDK: a repeat is deduplicated, ten at once start one run, other params are refused', async () => {
    const first = await admin.runs.launch('hr-onboard', { username: 'gina' }, { idempotencyKey: 'sdk-1' });
    const again = await admin.runs.launch('hr-onboard', { username: 'gina' }, { idempotencyKey: 'sdk-1' });
    expect([first.deduplicated, again.deduplicated, again.id]).toEqual([false, true, first.id]);
    expect(first.run).toMatchObject({ trigger: 'api', idempotencyKey: 'sdk-1' });
    const many = await Promise.all(Array.from({ length: 10 }, () => admin.runs.launch('hr-onboard', { username: 'hank' }, { idempotencyKey: 'sdk-2' })));
    expect(new Set(many.map((h) => h.id)).size).toBe(1);
    expect(many.filter((h) => !h.deduplicated)).toHaveLength(1);
    const err = await admin.runs.launch('hr-onboard', { username: 'ivan' }, { idempotencyKey: 'sdk-1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdempotencyKeyReusedError);
    expect((err as Error).message).toBe(`idempotency key "sdk-1" of hr-onboard already started run ${first.id} with other params; nothing was started`);
  });

  it('idempotent launch - CLI: drover run --idempotency-key says when nothing new was started; a bad key exits non-zero', async () => {
    const a = await cli(['run', 'hr-onboard', '-p', 'username=judy', '--idempotency-key', 'cli-1'], server.env);
    expect(a.code).toBe(0);
    const id = /^run (\S+) started/.exec(a.stdout)?.[1];
    expect(id).toBeTruthy();
    const b = await cli(['run', 'hr-onboard', '-p', 'username=judy', '--idempotency-key', 'cli-1'], server.env);
    expect(b.code).toBe(0);
    expect(b.stdout.split('\n')[0]).toMatch(new RegExp(`^run ${id} was already started with idempotency key "cli-1" \\(hr-onboard version 1\\); nothing new was started$`));
    const c = await cli(['run', 'hr-onboard', '-p', 'username=judy', '--idempotency-key', 'x'.repeat(201)], server.env);
    expect(c.code).not.toBe(0);
    expect(c.stderr).toMatch(/^error: idempotency key "x{40}…" is 201 characters long\nhint: use 1-200 printable ASCII characters/);
    const d = await cli(['run', 'hr-onboard', '-p', 'username=kim', '--idempotency-key', 'cli-1'], server.env);
    expect(d.code).not.toBe(0);
    expect(d.stderr).toMatch(/^error: idempotency key "cli-1" of hr-onboard already started run/);
  });
});
