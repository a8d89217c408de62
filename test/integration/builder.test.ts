import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DroverClient, workflow, WorkflowNotFoundError, type WorkflowDefinition } from '../../sdk/index.js';
import { cli, startAgent, startServer, tempDir, waitFor, type ServerProc } from '../helpers/cluster.js';

// Every step that picks one agent targets exactly one, so placement cannot
// depend on which agent happens to be least loaded between the two plans.
const YAML = `name: deploy-web
description: Roll a release out to the web tier
params:
  version: { type: string, pattern: "^v[0-9.]+$", description: release tag }
  hosts: { type: list, default: [a, b] }
  canary: { type: boolean, default: false }
env:
  VERSION: \${{ params.version }}
concurrency: queue
deadline: 1h
steps:
  - id: build
    target: { labels: { role: builder } }
    run: echo "building $VERSION"
    timeout: 5m
    retry: { attempts: 3, backoff: exponential, initial: 1s, max: 10s }
  - id: ship
    needs: [build]
    target:
      labels: { role: web }
      matchExpressions: [{ key: site, operator: In, values: [ams, fra] }]
      strategy: all
      maxParallel: 1
      maxFailures: 1
    command: [echo, "shipping", "\${{ params.version }}"]
  - id: migrate
    needs: [build]
    when: "params.canary == false"
    continueOnError: true
    target: { agent: build-1 }
    script: { interpreter: /bin/sh, body: "echo migrate" }
  - id: smoke
    needs: [ship]
    forEach: \${{ params.hosts }}
    target: { agent: build-1, maxParallel: 2 }
    env: { HOST: "\${{ item }}" }
    run: echo "smoke $HOST"
finally:
  - id: pause
    target: { agent: build-1 }
    sleep: 100ms
`;

function built(): WorkflowDefinition {
  return workflow('deploy-web')
    .describe('Roll a release out to the web tier')
    .param('version', { type: 'string', pattern: '^v[0-9.]+$', description: 'release tag' })
    .param('hosts', { type: 'list', default: ['a', 'b'] })
    .param('canary', { type: 'boolean', default: false })
    .env({ VERSION: '${{ params.version }}' })
    .concurrency('queue')
    .deadline('1h')
    .step({
      id: 'build',
      target: { labels: { role: 'builder' } },
      run: 'echo "building $VERSION"',
      timeout: '5m',
      retry: { attempts: 3, backoff: 'exponential', initial: '1s', max: '10s' },
    })
    .step({
      id: 'ship',
      needs: ['build'],
      target: {
        labels: { role: 'web' },
        matchExpressions: [{ key: 'site', operator: 'In', values: ['ams', 'fra'] }],
        strategy: 'all',
        maxParallel: 1,
        maxFailures: 1,
      },
      command: ['echo', 'shipping', '${{ params.version }}'],
    })
    .step({
      id: 'migrate',
      needs: ['build'],
      when: 'params.canary == false',
      continueOnError: true,
      target: { agent: 'build-1' },
      script: { interpreter: '/bin/sh', body: 'echo migrate' },
    })
    .step({
      id: 'smoke',
      needs: ['ship'],
      forEach: '${{ params.hosts }}',
      target: { agent: 'build-1', maxParallel: 2 },
      env: { HOST: '${{ item }}' },
      run: 'echo "smoke $HOST"',
    })
    .finally({ id: 'pause', target: { agent: 'build-1' }, sleep: '100ms' })
    .build();
}

let server: ServerProc;
let client: DroverClient;
const dir = tempDir('drover-builder-');
const file = join(dir, 'deploy.yaml');

beforeAll(async () => {
  writeFileSync(file, YAML);
  server = await startServer();
  startAgent(server, 'build-1', { role: 'builder' });
  startAgent(server, 'web-1', { role: 'web', site: 'ams' });
  startAgent(server, 'web-2', { role: 'web', site: 'fra' });
  client = new DroverClient(server.clientOptions);
  await waitFor(async () => (await client.fleet.list()).filter((a) => a.state === 'connected').length === 3, 20_000, () => 'three agents to connect');
});

afterAll(() => client?.close());

describe('builder - the typed builder and YAML are the same workflow', () => {
  it('builder - the built document equals the parsed YAML', () => {
    expect(built()).toEqual(parse(YAML));
  });

  it('builder - a built document and the equivalent YAML file plan to the same hash', async () => {
    const params = { version: 'v1.4.2' };
    const fromYaml = await client.workflows.plan(file, params);
    const fromBuilder = await client.workflows.plan(built(), params);
    expect(fromYaml.hash).toMatch(/^[0-9a-f]{8,}$/);
    expect(fromBuilder.hash).toBe(fromYaml.hash);
    expect(fromBuilder.waves).toEqual(fromYaml.waves);
    const ship = fromYaml.waves.flatMap((w) => w.steps).find((s) => s.id === 'ship');
    expect(ship?.instances).toEqual(['ship[web-1]', 'ship[web-2]']);
    expect(await client.workflows.validate(built())).toEqual({ workflow: 'deploy-web', valid: true, problems: [] });
  });

  it('builder - a run launched from the builder starts under the YAML plan hash and succeeds', async () => {
    const params = { version: 'v1.4.2' };
    const { hash } = await client.workflows.plan(file, params);
    const handle = await client.runs.launch(built(), params, { expectPlanHash: hash });
    expect(handle.run.planHash).toBe(hash);
    const run = await handle.wait();
    expect(run.status).toBe('succeeded');
    expect(run.steps.filter((s) => s.parent === 'ship').map((s) => s.id).sort()).toEqual(['ship[web-1]', 'ship[web-2]']);
    expect(run.steps.find((s) => s.id === 'migrate')?.kind).toBe('script');
  });
});

describe('examples - the shipped examples', () => {
  it('examples - every file in examples/ validates', async () => {
    const files = readdirSync('examples').filter((f) => /\.(ya?ml|json)$/.test(f)).map((f) => join('examples', f));
    const res = await cli(['validate', ...files], server.env);
    expect(res.stdout).not.toMatch(/error:/);
    expect(res.code, res.stdout).toBe(0);
  });
});

describe('builder - registry references from the SDK and the CLI', () => {
  it('registry - apply a built document, then plan and run it by name', async () => {
    const first = await client.workflows.apply(built());
    expect(first).toMatchObject({ name: 'deploy-web', version: 1, changed: true });
    expect((await client.workflows.apply(built())).changed).toBe(false);
    const preview = await client.workflows.plan({ ref: 'deploy-web@1' }, { version: 'v2' });
    expect(preview.version).toBe(1);
    const handle = await client.runs.launch('deploy-web', { version: 'v2' });
    expect(handle.run.workflowVersion).toBe(1);
    expect((await handle.wait()).status).toBe('succeeded');
    const missing = await client.workflows.get('deploy-web', 9).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(WorkflowNotFoundError);
  });

  it('registry - the CLI validates, plans, applies, lists, shows and runs by name', async () => {
    const env = server.env;
    const validate = await cli(['validate', file], env);
    expect(validate).toMatchObject({ code: 0, stdout: `${file}: valid (workflow deploy-web)\n` });

    const plan = await cli(['plan', file, '-p', 'version=v3'], env);
    expect(plan.code, plan.stderr).toBe(0);
    const hash = /Plan hash: (\S+)/.exec(plan.stdout)?.[1];
    expect(plan.stdout).toContain(`drover run ${file} -p version=v3 --plan-hash ${hash}`);

    const apply = await cli(['workflow', 'apply', file], env);
    expect(apply).toMatchObject({ code: 0, stdout: 'deploy-web: version 2 stored\n' });
    const list = await cli(['workflow', 'list'], env);
    expect(list.stdout).toMatch(/^deploy-web\s+2\s+2\s+\S+ ago\s+Roll a release out to the web tier$/m);
    const show = await cli(['workflow', 'show', 'deploy-web@2', '--source'], env);
    expect(show.stdout).toBe(YAML);

    const run = await cli(['run', 'deploy-web@2', '-p', 'version=v3', '--follow'], env, 60_000);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toContain('(deploy-web version 2)');

    const unknown = await cli(['run', 'no-such-workflow'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no workflow named "no-such-workflow"');
  });
});
