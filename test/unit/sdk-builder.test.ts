import { describe, expect, expectTypeOf, it } from 'vitest';
import type { z } from 'zod';
import { workflowSchema } from '../../common/workflow/compiler/schema.js';
import { workflow, type StepSpec, type WorkflowDefinition, type WorkflowDocument } from '../../sdk/index.js';

/** A document using every field the builder's types offer. */
function everything(): WorkflowDefinition {
  return workflow('deploy-web')
    .describe('Roll a release out')
    .param('version', { type: 'string', pattern: '^v[0-9.]+$', description: 'release tag' })
    .param('hosts', { type: 'list', default: ['web-1', 'web-2'] })
    .param('canary', { type: 'boolean', default: false })
    .param('batch', { type: 'number', enum: [1, 2, 4], required: false, default: 1 })
    .env({ VERSION: '${{ params.version }}', DEBUG: false, LEVEL: 2 })
    .deadline('1h')
    .concurrency('queue')
    .onAgentLost('retry')
    .step({
      id: 'build',
      name: 'Build the release',
      run: 'make release',
      timeout: '10m',
      retry: { attempts: 3, backoff: 'exponential', initial: '2s', max: 30, jitter: 0.2, retryOn: [75] },
      target: { labels: { role: 'builder' }, matchExpressions: [{ key: 'site', operator: 'In', values: ['ams', 'fra'] }, { key: 'gpu', operator: 'DoesNotExist' }] },
    })
    .step(
      { id: 'ship', needs: ['build'], command: ['./ship', '${{ params.version }}'], target: { labels: { role: 'web' }, strategy: 'all', maxParallel: 1, maxFailures: '25%' } },
      { id: 'migrate', needs: ['build'], script: { interpreter: 'python3', body: 'print("ok")' }, when: 'params.canary == false', continueOnError: true },
      { id: 'inline', needs: ['build'], script: 'echo inline', target: { agent: 'web-1' } },
      { id: 'health', needs: ['ship'], http: { method: 'GET', url: 'https://example.test/health', headers: { accept: 'text/plain' }, expect: [200, 204] } },
      { id: 'stamp', needs: ['ship'], file: { path: '/srv/app/VERSION', content: '${{ params.version }}', mode: '0644', owner: 'www-data' } },
      { id: 'per-host', needs: ['ship'], forEach: '${{ params.hosts }}', env: { HOST: '${{ item }}' }, run: 'echo "$HOST"', target: { maxParallel: 2, maxFailures: 1 } },
    )
    .finally({ id: 'pause', sleep: '250ms' }, { id: 'notify', http: { method: 'POST', url: 'https://hooks.example.test/deployed', body: 'done', expect: 200 } })
    .build();
}

describe('sdk builder', () => {
  it('builder - emits the same plain document a YAML file parses to, fields in the usual order', () => {
    const doc = workflow('onboard')
      .describe('Create an account')
      .param('username', { type: 'string', pattern: '^[a-z]+$' })
      .env({ USERNAME: '${{ params.username }}' })
      .step({ id: 'create', run: 'echo "$USERNAME"', target: { labels: { role: 'directory' } } })
      .step({ id: 'mail', needs: ['create'], run: 'echo mail' })
      .finally({ id: 'notify', run: 'echo done' })
      .concurrency('skip')
      .build();
    expect(doc).toStrictEqual({
      name: 'onboard',
      description: 'Create an account',
      params: { username: { type: 'string', pattern: '^[a-z]+$' } },
      env: { USERNAME: '${{ params.username }}' },
      concurrency: 'skip',
      steps: [
        { id: 'create', run: 'echo "$USERNAME"', target: { labels: { role: 'directory' } } },
        { id: 'mail', needs: ['create'], run: 'echo mail' },
      ],
      finally: [{ id: 'notify', run: 'echo done' }],
    });
    expect(Object.keys(doc)).toEqual(['name', 'description', 'params', 'env', 'concurrency', 'steps', 'finally']);
  });

  it('builder - leaves unset fields out and validates nothing itself', () => {
    expect(workflow('empty').build()).toStrictEqual({ name: 'empty', steps: [] });
    expect(workflow('Not A Valid Name').step({ id: '1bad', run: '' }).build()).toStrictEqual({ name: 'Not A Valid Name', steps: [{ id: '1bad', run: '' }] });
  });

  it('builder - later env and param calls merge or replace; build() returns a detached copy', () => {
    const step: StepSpec = { id: 'a', run: 'true', env: { X: '1' } };
    const b = workflow('w').env({ A: '1', B: '1' }).env({ B: '2' }).param('p', { type: 'number' }).param('p', { type: 'boolean' }).step(step);
    const first = b.build();
    expect(first.env).toEqual({ A: '1', B: '2' });
    expect(first.params).toEqual({ p: { type: 'boolean' } });
    step.env!.X = 'changed';
    first.steps.push({ id: 'b', run: 'true' });
    expect(b.build().steps).toEqual([{ id: 'a', run: 'true', env: { X: '1' } }]);
  });

  it('builder - every field the types allow is accepted by the compiler schema', () => {
    const result = workflowSchema.safeParse(everything());
    expect(result.error?.issues ?? []).toEqual([]);
  });

  it('builder - its types fit the compiler schema and require exactly one step kind', () => {
    expectTypeOf<WorkflowDefinition>().toExtend<z.input<typeof workflowSchema>>();
    expectTypeOf<WorkflowDefinition>().toExtend<WorkflowDocument>();
    // @ts-expect-error two kinds in one step
    const twoKinds: StepSpec = { id: 'x', run: 'a', command: ['b'] };
    // @ts-expect-error no kind
    const noKind: StepSpec = { id: 'x' };
    // @ts-expect-error In needs values
    const noValues: StepSpec = { id: 'x', run: 'a', target: { matchExpressions: [{ key: 'k', operator: 'In' }] } };
    expect([twoKinds, noKind, noValues]).toHaveLength(3);
  });
});
