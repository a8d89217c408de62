import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DroverClient, type Run } from '../../sdk/index.js';
import { startAgent, startServer, tempDir, waitFor, type ServerProc, isAlive } from '../helpers/cluster.js';

let server: ServerProc;
let client: DroverClient;
let http: Server;
let httpUrl: string;
const httpRequests: { method: string; url: string; body: string; header: string }[] = [];
const dir = tempDir('drover-lang-');
const roots = tempDir('drover-roots-');

beforeAll(async () => {
  server = await startServer();
  for (const [name, zone] of [
    ['web-1', 'a'],
    ['web-2', 'b'],
    ['web-3', 'c'],
  ]) {
    startAgent(server, name, { tier: 'web', zone }, undefined, name === 'web-3' ? ['--file-root', roots] : []);
  }
  client = new DroverClient(server.clientOptions);
  await waitFor(async () => (await client.fleet.list()).filter((a) => a.state === 'connected').length === 3, 20_000, () => 'three agents');
  http = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      httpRequests.push({ method: req.method!, url: req.url!, body, header: String(req.headers['x-run'] ?? '') });
      if (req.url === '/to-metadata') return void res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
      res.writeHead(req.url === '/missing' ? 404 : 201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true, got: body }));
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  httpUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
});

afterAll(() => {
  http?.close();
  client?.close();
});

let n = 0;
async function run(yaml: string, params: Record<string, string> = {}): Promise<Run> {
  const file = join(dir, `wf-${++n}.yaml`);
  writeFileSync(file, yaml);
  return (await client.runs.launch(file, params)).wait();
}

const step = (r: Run, id: string) => r.steps.find((s) => s.id === id)!;

describe('language - end to end with real agents', () => {
  it('language - a retry succeeds on the third attempt', async () => {
    const counter = join(dir, 'tries');
    const r = await run(
      `name: retrying
params: { counter: {} }
steps:
  - id: flaky
    target: { agent: web-1 }
    env: { COUNTER: "\${{ params.counter }}" }
    retry: { attempts: 5, backoff: exponential, initial: 100ms, max: 200ms }
    run: |
      echo x >> "$COUNTER"
      n=$(wc -l < "$COUNTER")
      echo "attempt $n"
      [ "$n" -ge 3 ]
`,
      { counter },
    );
    expect(r.status).toBe('succeeded');
    expect(step(r, 'flaky').attempt).toBe(3);
    expect(readFileSync(counter, 'utf8').split('\n').filter(Boolean)).toHaveLength(3);
  });

  it('language - a timeout kills the step and fails it', async () => {
    const pidFile = join(dir, 'slow.pid');
    const r = await run(
      `name: timing-out
params: { pid: {} }
steps:
  - id: slow
    timeout: 1s
    env: { PIDFILE: "\${{ params.pid }}" }
    run: sleep 60 & echo $! > "$PIDFILE"; wait
`,
      { pid: pidFile },
    );
    expect(r.status).toBe('failed');
    expect(step(r, 'slow').message).toMatch(/timed out after 1s/);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    await waitFor(() => !isAlive(pid), 5000, () => 'the sleep to be gone');
  });

  it('language - outputs flow across agents, and when skips a step', async () => {
    const r = await run(`name: outputs-and-when
steps:
  - id: produce
    target: { agent: web-1 }
    run: |
      echo "version=1.2.3" >> "$DROVER_OUTPUT"
      printf 'notes<<END\\nline one\\nline two\\nEND\\n' >> "$DROVER_OUTPUT"
  - id: consume
    needs: [produce]
    target: { agent: web-2 }
    env: { V: "\${{ steps.produce.outputs.version }}", N: "\${{ steps.produce.outputs.notes }}" }
    run: printf '%s|%s' "$V" "$N" > consumed.txt; cat consumed.txt; echo "seen=$V" >> "$DROVER_OUTPUT"
  - id: only-on-2
    needs: [produce]
    when: steps.produce.outputs.version == '2.0.0'
    run: echo should not run
  - id: only-on-1
    needs: [produce]
    when: "\${{ steps.produce.outputs.version.startsWith('1.') }}"
    run: echo runs
`);
    expect(r.status).toBe('succeeded');
    expect(step(r, 'consume').outputs).toEqual({ seen: '1.2.3' });
    expect(step(r, 'only-on-2')).toMatchObject({ status: 'skipped', message: expect.stringMatching(/condition .* is false/) });
    expect(step(r, 'only-on-1').status).toBe('succeeded');
    const lines: string[] = [];
    for await (const l of client.logs(r.id, 'consume')) lines.push(l.text);
    expect(lines.join('\n')).toBe('1.2.3|line one\nline two');
  });

  it('language - a fan-out to 3 agents with maxParallel 1 runs them one at a time', async () => {
    const r = await run(`name: rolling
steps:
  - id: deploy
    target: { labels: { tier: web }, strategy: all, maxParallel: 1 }
    run: echo "deploying on $DROVER_AGENT"; sleep 0.3
  - id: verify
    needs: [deploy]
    run: echo verified
`);
    expect(r.status).toBe('succeeded');
    const instances = r.steps.filter((s) => s.parent === 'deploy').sort((a, b) => a.startedAt - b.startedAt);
    expect(instances.map((s) => s.id).sort()).toEqual(['deploy[web-1]', 'deploy[web-2]', 'deploy[web-3]']);
    expect(instances.map((s) => s.agent).sort()).toEqual(['web-1', 'web-2', 'web-3']);
    for (let i = 1; i < instances.length; i++) expect(instances[i].startedAt).toBeGreaterThanOrEqual(instances[i - 1].endedAt);
    expect(step(r, 'deploy')).toMatchObject({ status: 'succeeded', kind: 'group' });
    expect(step(r, 'verify').startedAt).toBeGreaterThanOrEqual(Math.max(...instances.map((s) => s.endedAt)));
  });

  it('language - a rolling fan-out stops past maxFailures and the rest are skipped', async () => {
    const r = await run(`name: rolling-bad
steps:
  - id: deploy
    target: { labels: { tier: web }, strategy: all, maxParallel: 1, maxFailures: 0 }
    run: exit 3
`);
    expect(r.status).toBe('failed');
    const instances = r.steps.filter((s) => s.parent === 'deploy');
    expect(instances.filter((s) => s.status === 'failed')).toHaveLength(1);
    expect(instances.filter((s) => s.status === 'skipped')).toHaveLength(2);
    expect(step(r, 'deploy').message).toMatch(/1 failed, 2 skipped \(maxFailures 0\)/);
  });

  it('language - forEach runs one instance per item with item available', async () => {
    const out = join(dir, 'foreach');
    const r = await run(
      `name: per-user
params:
  users: { type: list, default: [ann, bob, "c d"] }
  out: {}
steps:
  - id: greet
    forEach: \${{ params.users }}
    target: { labels: { tier: web } }
    env: { WHO: "\${{ item }}", OUT: "\${{ params.out }}" }
    run: echo "$WHO" >> "$OUT"
`,
      { out },
    );
    expect(r.status).toBe('succeeded');
    expect(r.steps.filter((s) => s.parent === 'greet').map((s) => s.id)).toEqual(['greet[0]', 'greet[1]', 'greet[2]']);
    expect(readFileSync(out, 'utf8').split('\n').filter(Boolean).sort()).toEqual(['ann', 'bob', 'c d']);
  });

  it('language - finally steps run after a failure', async () => {
    const marker = join(dir, 'finally-ran');
    const r = await run(
      `name: with-finally
params: { marker: {} }
steps:
  - { id: boom, run: "exit 1" }
  - { id: after, needs: [boom], run: "true" }
finally:
  - id: cleanup
    env: { MARKER: "\${{ params.marker }}" }
    run: echo "cleaned after $BOOM_STATUS" > "$MARKER"
`,
      { marker },
    );
    expect(r.status).toBe('failed');
    expect(step(r, 'after').status).toBe('skipped');
    expect(step(r, 'cleanup').status).toBe('succeeded');
    expect(existsSync(marker)).toBe(true);
  });

  it('language - injection strings in params arrive byte for byte, through env and argv', async () => {
    const nasty = `a; rm -rf /tmp/nope $(id) \`whoami\` 'single' "double" \\back\nnew line ${'$'}{HOME} && echo pwned`;
    const viaEnv = join(dir, 'via-env');
    const viaArgv = join(dir, 'via-argv');
    const r = await run(
      `name: injection
params: { value: {}, envOut: {}, argvOut: {} }
steps:
  - id: env
    env: { VALUE: "\${{ params.value }}", OUT: "\${{ params.envOut }}" }
    run: printf '%s' "$VALUE" > "$OUT"
  - id: argv
    command: [/usr/bin/env, "OUT=\${{ params.argvOut }}", /bin/sh, -c, 'printf "%s" "$1" > "$OUT"', sh, "\${{ params.value }}"]
`,
      { value: nasty, envOut: viaEnv, argvOut: viaArgv },
    );
    expect(r.status).toBe('succeeded');
    expect(readFileSync(viaEnv, 'utf8')).toBe(nasty);
    expect(readFileSync(viaArgv, 'utf8')).toBe(nasty);
  });

  it('language - script, http, file and sleep steps', async () => {
    const r = await run(
      `name: kinds
params: { root: {}, url: {} }
steps:
  - id: script
    script:
      interpreter: /bin/sh -eu
      body: |
        total=0
        for i in 1 2 3; do total=$((total + i)); done
        echo "total=$total" >> "$DROVER_OUTPUT"
  - id: post
    needs: [script]
    http:
      method: POST
      url: "\${{ params.url }}/hooks/done"
      headers: { x-run: "\${{ run.id }}" }
      body: '{"total": \${{ steps.script.outputs.total }}}'
      expect: 201
  - id: write
    needs: [post, script]
    target: { agent: web-3 }
    file:
      path: "\${{ params.root }}/reports/total.txt"
      content: "total is \${{ steps.script.outputs.total }}\\n"
      mode: "0640"
  - id: nap
    sleep: 200ms
  - id: escape
    continueOnError: true
    target: { agent: web-3 }
    file: { path: "\${{ params.root }}/../outside.txt", content: nope }
`,
      { root: roots, url: httpUrl },
    );
    expect(r.steps.filter((s) => s.status !== 'succeeded').map((s) => `${s.id}: ${s.message}`)).toEqual([
      `escape: "${roots}/../outside.txt" is outside the agent's allowed roots (${roots}); write inside one of them, or add a root with --file-root`,
    ]);
    expect(r.status).toBe('succeeded');
    expect(step(r, 'script').outputs.total).toBe('6');
    expect(httpRequests.at(-1)).toEqual({ method: 'POST', url: '/hooks/done', body: '{"total": 6}', header: r.id });
    expect(step(r, 'post').outputs.status).toBe('201');
    expect(JSON.parse(step(r, 'post').outputs.body)).toEqual({ ok: true, got: '{"total": 6}' });
    expect(readFileSync(join(roots, 'reports/total.txt'), 'utf8')).toBe('total is 6\n');
    expect(step(r, 'nap').endedAt - step(r, 'nap').startedAt).toBeGreaterThanOrEqual(190);
    expect(step(r, 'escape')).toMatchObject({ status: 'failed', message: expect.stringMatching(/outside the agent's allowed roots/) });
    expect(existsSync(join(roots, '../outside.txt'))).toBe(false);
  });

  it('language - an http step fails on an unexpected status', async () => {
    const r = await run(`name: http-404\nparams: { url: {} }\nsteps:\n  - id: get\n    http: { url: "\${{ params.url }}/missing" }\n`, { url: httpUrl });
    expect(r.status).toBe('failed');
    expect(step(r, 'get').message).toBe('expected status 2xx, got 404 Not Found');
  });

  it('language - file steps: a setuid mode or an unknown owner fails and leaves nothing; ..hidden is a name inside the root; mode 644 unquoted is 0644', async () => {
    const r = await run(
      `name: file-modes
params: { root: {} }
steps:
  - { id: suid, continueOnError: true, target: { agent: web-3 }, file: { path: "\${{ params.root }}/suid", content: x, mode: "4755" } }
  - { id: owner, continueOnError: true, target: { agent: web-3 }, file: { path: "\${{ params.root }}/owned", content: x, owner: no-such-user-42 } }
  - { id: dots, target: { agent: web-3 }, file: { path: "\${{ params.root }}/..hidden", content: dots, mode: 644 } }
`,
      { root: roots },
    );
    expect(step(r, 'suid')).toMatchObject({ status: 'failed', message: expect.stringMatching(/mode 4755 sets the setuid bit.*--file-allow-special-modes/) });
    expect(step(r, 'owner')).toMatchObject({ status: 'failed', message: expect.stringMatching(/no-such-user-42/) });
    expect(step(r, 'dots').status).toBe('succeeded');
    expect(statSync(join(roots, '..hidden')).mode & 0o7777).toBe(0o644);
    expect(existsSync(join(roots, 'suid'))).toBe(false);
    expect(existsSync(join(roots, 'owned'))).toBe(false);
    expect(readdirSync(roots).filter((f) => f.includes('drover-tmp'))).toEqual([]);
  });

  it('language - an http step is refused a redirect to the cloud metadata address', async () => {
    const r = await run(`name: http-egress\nparams: { url: {} }\nsteps:\n  - id: get\n    http: { url: "\${{ params.url }}/to-metadata" }\n`, { url: httpUrl });
    expect(r.status).toBe('failed');
    expect(step(r, 'get').message).toBe(
      'http step refused to connect to 169.254.169.254: 169.254.0.0/16 (link-local and cloud metadata addresses) is denied by default; start the agent with --http-allow 169.254.169.254 to allow it',
    );
  });

  it('language - concurrency queue runs one at a time; skip refuses a second run', async () => {
    const queueDoc = `name: queued\nconcurrency: queue\nsteps:\n  - { id: s, run: "sleep 0.5" }\n`;
    const file = join(dir, 'queued.yaml');
    writeFileSync(file, queueDoc);
    const a = await client.runs.launch(file);
    const b = await client.runs.launch(file);
    expect(b.run.status).toBe('pending');
    const [ra, rb] = await Promise.all([a.wait(), b.wait()]);
    expect(ra.status).toBe('succeeded');
    expect(rb.status).toBe('succeeded');
    expect(rb.startedAt).toBeGreaterThanOrEqual(ra.endedAt);

    const skipFile = join(dir, 'skipping.yaml');
    writeFileSync(skipFile, `name: skipping\nconcurrency: skip\nsteps:\n  - { id: s, run: "sleep 1" }\n`);
    const first = await client.runs.launch(skipFile);
    const err = await client.runs.launch(skipFile).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'RUN_SKIPPED' });
    expect((err as Error).message).toMatch(new RegExp(`run ${first.id} of skipping is still running`));
    await first.wait();
  });

  it('language - a run past its deadline is stopped and fails', async () => {
    const r = await run(`name: deadline\ndeadline: 1s\nsteps:\n  - { id: long, run: "sleep 30" }\n`);
    expect(r.status).toBe('failed');
    expect(r.message).toMatch(/deadline of 1s exceeded/);
    expect(step(r, 'long').status).toBe('cancelled');
  });
});

