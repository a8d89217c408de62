/**
 * Secrets and the audit trail against real processes (docs/security.md):
 * a secret used by a run is found nowhere on disk afterwards, in any form it
 * is masked in; the audit log names an edited record.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DroverClient, InvalidWorkflowError, PermissionDeniedError, SecretNotFoundError } from '../../sdk/index.js';
import { cli, startAgent, startServer, tempDir, waitFor, type AgentProc, type ServerProc } from '../helpers/cluster.js';

const dir = tempDir('drover-secrets-');
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** Every regular file under `root`, recursively. */
function filesUnder(root: string): string[] {
  const out: string[] = [];
  let names: string[];
  try {
    names = readdirSync(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return out;
    throw err;
  }
  for (const name of names) {
    const p = join(root, name);
    const st = statSync(p, { throwIfNoEntry: false });
    // Gone between the listing and now (a temp file renamed, a finished attempt's directory removed).
    if (!st) continue;
    if (st.isDirectory()) out.push(...filesUnder(p));
    else if (st.isFile()) out.push(p);
  }
  return out;
}

/** The files under the roots that hold `needle` (a file renamed or removed meanwhile holds nothing any more: what it held is where it went). */
function holders(roots: string[], needle: string): string[] {
  return roots.flatMap(filesUnder).filter((f) => {
    try {
      return readFileSync(f).includes(needle);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  });
}

describe('secrets - stored secrets and secret params', () => {
  let server: ServerProc;
  let agent: AgentProc;
  let admin: DroverClient;
  beforeAll(async () => {
    server = await startServer();
    agent = startAgent(server, 'sec-1');
    admin = new DroverClient(server.clientOptions);
    await waitFor(async () => (await admin.fleet.list()).some((a) => a.name === 'sec-1' && a.state === 'connected'), 20_000, () => `agent:\n${agent.output()}`);
  });
  afterAll(() => admin?.close());

  it('secrets - a run uses a secret and a secret param, and no file of the control plane or the agent holds either, in clear or base64', async () => {
    const secret = 'hunter2-Sup3r/S3cret value';
    const multi = 'line-one-AAAA\nline-two-BBBB';
    const param = 'p4ram-S3cret-XYZ';
    let res = await cli(['secret', 'set', 'DB_PASSWORD'], server.env);
    expect(res.code, res.stderr).not.toBe(0); // no stdin value
    expect(res.stderr).toMatch(/no value for secret "DB_PASSWORD"/);
    await admin.secrets.set('DB_PASSWORD', secret);
    await admin.secrets.set('MULTI', multi);
    writeFileSync(join(dir, 'wf.yaml'), [
      'name: uses-secrets',
      'params:',
      '  token: { type: string, secret: true }',
      'steps:',
      '  - id: show',
      '    secrets: [DB_PASSWORD]',
      '    env:',
      '      MULTI: "${{ secrets.MULTI }}"',
      '      TOKEN: "${{ params.token }}"',
      '    run: |',
      '      echo "plain: $DB_PASSWORD"',
      '      printf "split: "; printf %s "$DB_PASSWORD" | head -c 8; sleep 0.4; printf "%s\\n" "$DB_PASSWORD" | tail -c +9',
      '      echo "b64: $(printf %s "$DB_PASSWORD" | base64 -w0)"',
      '      echo "url: $(printf %s "$DB_PASSWORD" | sed "s/ /%20/g; s#/#%2F#g")"',
      '      echo "multi: $MULTI"',
      '      echo "token: $TOKEN" >&2',
      '      echo "out=$DB_PASSWORD" >> "$DROVER_OUTPUT"',
      '      echo "tok=$TOKEN" >> "$DROVER_OUTPUT"',
      // The values are checked by hash: the document itself is stored, so it may not hold them.
      `      test "$(printf %s "$DB_PASSWORD$TOKEN" | sha256sum | cut -c1-64)" = ${sha256(secret + param)} && echo values-arrived-intact`,
      '  - id: later',
      '    needs: [show]',
      '    run: \'echo "not given: [$DB_PASSWORD]"\'',
    ].join('\n'));
    const run = await admin.runs.launch(join(dir, 'wf.yaml'), { token: param });
    const done = await run.wait();
    expect(done.status, done.message).toBe('succeeded');
    expect(done.params.token).toBe('(secret)');
    const lines = [];
    for await (const l of admin.logs(run.id)) lines.push(l.text);
    const text = lines.join('');
    expect(text).toContain('values-arrived-intact');
    expect(text).toContain('plain: ***');
    expect(text).toContain('split: ***');
    expect(text).toContain('b64: ***');
    expect(text).toContain('url: ***');
    expect(text).toContain('multi: ***');
    expect(text).toContain('token: ***');
    expect(text).toContain('not given: []');
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('S3cret');
    const step = done.steps.find((s) => s.id === 'show')!;
    expect(step.outputs).toEqual({ out: '***', tok: '***' });
    // Give the agent's journal its ack, so what is on disk is what stays there.
    await new Promise((r) => setTimeout(r, 500));
    const roots = [server.dataDir, agent.stateDir];
    for (const needle of [secret, Buffer.from(secret).toString('base64'), 'line-one-AAAA', 'line-two-BBBB', Buffer.from(multi).toString('base64'), param, Buffer.from(param).toString('base64')]) {
      expect(holders(roots, needle), `files holding ${JSON.stringify(needle)}`).toEqual([]);
    }
    // Nor the processes' own logs.
    for (const needle of [secret, param, 'line-one-AAAA']) {
      expect(server.output()).not.toContain(needle);
      expect(agent.output()).not.toContain(needle);
    }
    const audit = await admin.audit.list({ action: 'secret.read' });
    expect(audit.map((r) => r.target).sort()).toEqual(['DB_PASSWORD', 'MULTI']);
    expect(audit[0].detail).toMatchObject({ run: run.id, step: 'show', agent: 'sec-1' });
    const submitted = await admin.audit.list({ action: 'RunService/SubmitRun' });
    expect(submitted.find((a) => a.detail.id === run.id)).toMatchObject({ actorKind: 'token', actor: server.creds.token.split('.')[1], target: expect.stringMatching(/wf\.yaml$/), result: 'ok' });
    expect(JSON.stringify(submitted)).not.toContain(param);
  });

  it('secrets - an unknown secret is a compile error naming it; list shows names only; rm needs admin and names what is missing', async () => {
    writeFileSync(join(dir, 'missing.yaml'), 'name: missing\nsteps:\n  - id: a\n    secrets: [NOPE]\n    run: "true"\n');
    const err = await admin.runs.launch(join(dir, 'missing.yaml')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidWorkflowError);
    expect((err as InvalidWorkflowError).problems[0].message).toMatch(/secret "NOPE" is not set on this control plane; set it with `drover secret set NOPE`/);
    const res = await cli(['secret', 'list'], server.env);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^NAME\s+VERSION\s+UPDATED\s+BY\s+CREATED/);
    expect(res.stdout).toContain('DB_PASSWORD');
    expect(res.stdout).not.toContain('hunter2');
    const operator = new DroverClient({ ...server.clientOptions, token: (await admin.access.createToken('operator')).token });
    expect((await operator.secrets.list()).map((s) => s.name)).toContain('DB_PASSWORD');
    expect(await operator.secrets.remove('DB_PASSWORD').catch((e: unknown) => e)).toBeInstanceOf(PermissionDeniedError);
    operator.close();
    expect(await admin.secrets.remove('NOT_THERE').catch((e: unknown) => e)).toBeInstanceOf(SecretNotFoundError);
    const forEach = 'name: fe\nparams:\n  hosts: { type: string, secret: true }\nsteps:\n  - id: a\n    forEach: "${{ [params.hosts] }}"\n    run: "true"\n';
    writeFileSync(join(dir, 'fe.yaml'), forEach);
    const feErr = (await admin.runs.launch(join(dir, 'fe.yaml'), { hosts: 'x' }).catch((e: unknown) => e)) as InvalidWorkflowError;
    expect(feErr.problems.map((p) => p.message).join('\n')).toMatch(/forEach may not use secret param "hosts"/);
  });
});

describe('audit - the hash-chained audit log', () => {
  it('audit - mutating calls and refusals are recorded with who and from where; an edited line is named by drover audit verify', async () => {
    const server = await startServer();
    const admin = new DroverClient(server.clientOptions);
    const viewer = await admin.access.createToken('viewer', { description: 'dash' });
    await admin.devices.add({ name: 'sw-1', host: '10.0.0.2', user: 'admin', credential: 'lab' });
    const v = new DroverClient({ ...server.clientOptions, token: viewer.token });
    await v.devices.remove('sw-1').catch(() => undefined);
    v.close();
    await admin.secrets.set('K', 'value-of-k');
    const records = await admin.audit.list();
    const actions = records.map((r) => `${r.action} ${r.target} ${r.result}`);
    expect(actions).toEqual(
      expect.arrayContaining([
        'AccessService/CreateToken api ok',
        'DeviceService/AddDevice sw-1 ok',
        'DeviceService/RemoveDevice sw-1 PERMISSION_DENIED',
        'SecretService/SetSecret K ok',
      ]),
    );
    // Refusals without a valid token are recorded at a bounded rate per address (60 a minute).
    const anon = new DroverClient({ address: server.address, ca: server.creds.caFile });
    await Promise.all(Array.from({ length: 80 }, () => anon.fleet.list().catch(() => undefined)));
    anon.close();
    const unauth = (await admin.audit.list({ limit: 100_000 })).filter((r) => r.result === 'UNAUTHENTICATED');
    expect(unauth.length).toBe(60);
    expect(unauth[0]).toMatchObject({ actorKind: 'anonymous', action: 'FleetService/ListAgents', from: '127.0.0.1' });
    const denied = records.find((r) => r.result === 'PERMISSION_DENIED')!;
    expect(denied).toMatchObject({ actorKind: 'token', actor: viewer.info.id, from: '127.0.0.1' });
    expect(JSON.stringify(records)).not.toContain('value-of-k');
    let res = await cli(['audit', 'verify'], server.env);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/audit log intact: \d+ records/);
    res = await cli(['audit', '--since', '1h', '--actor', viewer.info.id], server.env);
    expect(res.stdout).toMatch(/RemoveDevice/);
    expect(res.stdout).not.toMatch(/SetSecret/);

    // An attacker with the disk flips a refusal into a success on line 3.
    const file = join(server.dataDir, 'audit.log');
    const lines = readFileSync(file, 'utf8').split('\n');
    const target = lines.findIndex((l) => l.includes('PERMISSION_DENIED'));
    lines[target] = lines[target].replace('PERMISSION_DENIED', 'ok');
    writeFileSync(file, lines.join('\n'));
    res = await cli(['audit', 'verify'], server.env);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain(`line ${target + 1} `);
    expect(res.stdout).toMatch(/was edited/);
    res = await cli(['audit', 'verify', '--file', file]);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain(`line ${target + 1} `);
    // Deleting the last record instead is caught against audit.head.
    lines[target] = lines[target].replace('"ok"', '"PERMISSION_DENIED"');
    writeFileSync(file, `${lines.slice(0, -2).join('\n')}\n`);
    res = await cli(['audit', 'verify', '--file', file]);
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/the last 1 record\(s\) were deleted/);
    admin.close();
  });

  it('audit - records deleted while the control plane was stopped are recorded as missing when it starts again', async () => {
    const server = await startServer();
    const admin = new DroverClient(server.clientOptions);
    await admin.secrets.set('A', 'value-a');
    await admin.secrets.set('B', 'value-b');
    admin.close();
    await server.stop();
    const file = join(server.dataDir, 'audit.log');
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    writeFileSync(file, `${lines.slice(0, -1).join('\n')}\n`);
    const again = await startServer({ dataDir: server.dataDir });
    const client = new DroverClient(again.clientOptions);
    const missing = await client.audit.list({ action: 'audit.' });
    expect(missing).toEqual([expect.objectContaining({ action: 'audit.records-missing', result: 'TAMPERED', detail: { headSeq: String(lines.length), logSeq: String(lines.length - 1) } })]);
    client.close();
  });
});
