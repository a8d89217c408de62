import { plainView } from '../../sdk/cli/output.js';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeMessage } from '../../proto/index.js';
import type { PlanPreviewOut } from '../../proto/index.js';
import { toPlanPreview } from '../../sdk/convert.js';
import {
  DroverClient,
  FileNotFoundError,
  formatWorkflowRef,
  fromGrpcError,
  InvalidInputError,
  parseWorkflowRef,
  RunSkippedError,
  WorkflowNotFoundError,
  type PlanPreview,
} from '../../sdk/index.js';
import { resolveWorkflow } from '../../sdk/source.js';
import { planText } from '../../sdk/cli/render/plan.js';
import { formatProblemLine, validationText } from '../../sdk/cli/render/problems.js';
import { applyLine, workflowHeader, workflowsTable } from '../../sdk/cli/render/workflows.js';
import { cli } from '../../sdk/cli/invocation.js';
import { shellCommand } from '../../sdk/cli/shell.js';

const NOW = 1_700_000_000_000;

function serviceError(code: status, detail: object): ServiceError {
  const metadata = new Metadata();
  metadata.set('drover-error-bin', Buffer.from(encodeMessage('ErrorDetail', detail)));
  return Object.assign(new Error('x'), { code, details: 'x', metadata });
}

describe('sdk workflow references', () => {
  it('refs - NAME and NAME@VERSION parse; anything else is not a reference', () => {
    expect(parseWorkflowRef('deploy')).toEqual({ name: 'deploy', version: 0 });
    expect(parseWorkflowRef('onboard-employee@12')).toEqual({ name: 'onboard-employee', version: 12 });
    for (const bad of ['Deploy', 'deploy@0', 'deploy@latest', 'deploy@-1', '@3', 'a/b', './deploy', 'deploy@3@4', '']) {
      expect(parseWorkflowRef(bad), bad).toBeUndefined();
    }
    expect(formatWorkflowRef({ name: 'deploy', version: 0 })).toBe('deploy');
    expect(formatWorkflowRef({ name: 'deploy', version: 3 })).toBe('deploy@3');
  });

  it('refs - an existing file wins; a missing NAME[@V] is a registry reference; a missing *.yaml or path is FILE_NOT_FOUND', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'drover-ref-'));
    const file = join(dir, 'deploy');
    writeFileSync(file, 'name: deploy\n');
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      expect(await resolveWorkflow('deploy')).toEqual({ kind: 'source', source: 'name: deploy\n', filename: 'deploy' });
      expect(await resolveWorkflow('deploy@2')).toEqual({ kind: 'ref', ref: 'deploy@2' });
      expect(await resolveWorkflow('other')).toEqual({ kind: 'ref', ref: 'other' });
      const missingYaml = await resolveWorkflow('other.yaml').catch((e: unknown) => e);
      expect(missingYaml).toBeInstanceOf(FileNotFoundError);
      expect((missingYaml as Error).message).toBe('workflow file not found: other.yaml');
      expect(await resolveWorkflow('./nope').catch((e: unknown) => e)).toBeInstanceOf(FileNotFoundError);
    } finally {
      process.chdir(cwd);
    }
  });

  it('refs - { ref } objects are always the registry, and must be well formed', async () => {
    expect(await resolveWorkflow({ ref: 'deploy@3' })).toEqual({ kind: 'ref', ref: 'deploy@3' });
    const bad = await resolveWorkflow({ ref: 'Deploy Now' }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(InvalidInputError);
    expect((bad as Error).message).toBe('invalid workflow reference "Deploy Now"');
    const doc = await resolveWorkflow({ name: 'w', steps: [{ id: 'a', run: 'true' }] });
    expect(doc).toMatchObject({ kind: 'source', filename: '<w>' });
  });

  it('refs - validate and apply need a document, not a reference', async () => {
    const client = new DroverClient({ address: '127.0.0.1:1' });
    try {
      const err = await client.workflows.validate({ ref: 'deploy' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidInputError);
      expect((err as Error).message).toBe('a registry reference (deploy) is not accepted here; give a file or a document');
      const get = await client.workflows.get('Bad Name').catch((e: unknown) => e);
      expect(get).toBeInstanceOf(InvalidInputError);
      expect((get as Error).message).toBe('invalid workflow name "Bad Name"');
    } finally {
      client.close();
    }
  });
});

describe('sdk workflow errors', () => {
  it('errors - WORKFLOW_NOT_FOUND and RUN_SKIPPED map to their classes', () => {
    const notFound = fromGrpcError(serviceError(status.NOT_FOUND, { code: 'WORKFLOW_NOT_FOUND', message: 'no workflow "deploy"', hint: 'see drover workflow list' }), 'a:1');
    expect(notFound).toBeInstanceOf(WorkflowNotFoundError);
    expect(notFound.code).toBe('WORKFLOW_NOT_FOUND');
    expect(notFound.name).toBe('WorkflowNotFoundError');
    expect(notFound.message).toBe('no workflow "deploy"');
    expect(notFound.hint).toBe('see drover workflow list');
    const skipped = fromGrpcError(serviceError(status.FAILED_PRECONDITION, { code: 'RUN_SKIPPED', message: 'run r-1 of deploy is active' }), 'a:1');
    expect(skipped).toBeInstanceOf(RunSkippedError);
    expect(skipped.code).toBe('RUN_SKIPPED');
  });
});

const WIRE_PREVIEW: PlanPreviewOut = {
  workflow: 'deploy',
  version: 0,
  hash: 'abc123',
  params: { version: 'v1.2', note: 'two words' },
  problems: [{ path: 'steps[2].target', line: 14, column: 5, message: 'no agent has ever matched role=db', severity: 'warning' }],
  waves: [
    {
      index: 0,
      steps: [
        {
          id: 'build', kind: 'run', needs: [], target: 'role=builder', strategy: 'one',
          matches: [{ name: 'b-1', state: 'AGENT_STATE_CONNECTED', draining: false }, { name: 'b-2', state: 'AGENT_STATE_DISCONNECTED', draining: true }],
          instances: [], agent: 'b-1', when: '', isFinally: false, maxParallel: 0, maxFailures: 0, waitMs: 0,
        },
      ],
    },
    {
      index: 1,
      steps: [
        {
          id: 'ship', kind: 'command', needs: ['build'], target: 'role=web', strategy: 'all',
          matches: [{ name: 'web-1', state: 'AGENT_STATE_CONNECTED', draining: false }, { name: 'web-2', state: 'AGENT_STATE_LOST', draining: false }],
          instances: ['ship[web-1]', 'ship[web-2]'], agent: '', when: "params.version != ''", isFinally: false, maxParallel: 1, maxFailures: 1, waitMs: 0,
        },
        {
          id: 'migrate', kind: 'script', needs: ['build'], target: 'role=db', strategy: 'one',
          matches: [], instances: [], agent: '', when: '', isFinally: false, maxParallel: 0, maxFailures: 0, waitMs: 600_000,
        },
      ],
    },
    {
      index: 2,
      steps: [{ id: 'notify', kind: 'http', needs: [], target: '', strategy: 'one', matches: [{ name: 'b-1', state: 'AGENT_STATE_CONNECTED', draining: false }], instances: [], agent: 'b-1', when: '', isFinally: true, maxParallel: 0, maxFailures: 0, waitMs: 0 }],
    },
  ],
};

describe('sdk plan preview', () => {
  it('plan - the wire preview becomes lowercase domain values, warnings only', () => {
    const p = toPlanPreview(WIRE_PREVIEW);
    expect(p.waves[0].steps[0].matches).toEqual([{ name: 'b-1', state: 'connected', draining: false }, { name: 'b-2', state: 'disconnected', draining: true }]);
    expect(p.waves[1].steps[0]).toMatchObject({ kind: 'command', strategy: 'all', instances: ['ship[web-1]', 'ship[web-2]'], waitMs: 0 });
    expect(p.waves[1].steps[1].waitMs).toBe(600_000);
    expect(p.warnings).toEqual([{ path: 'steps[2].target', line: 14, column: 5, message: 'no agent has ever matched role=db', severity: 'warning' }]);
  });

  it('plan - a plan a run of which would be refused now lists the reasons and offers no hash', () => {
    const blocker = { path: 'step "ship".target', line: 0, column: 0, message: 'every agent matching role=web is draining', severity: 'error' as const };
    const preview: PlanPreview = { ...toPlanPreview(WIRE_PREVIEW), blockers: [blocker] };
    const text = planText(preview, { workflowArg: 'deploy.yaml', runCommand: 'drover run deploy.yaml --plan-hash abc' });
    expect(text).toMatch(/\nCannot start now:\n  deploy.yaml: error: every agent matching role=web is draining  \(at step "ship".target\)\n$/);
    expect(text).not.toMatch(/Plan hash|--plan-hash/);
  });

  it('plan - text shows waves, targets, matches with state, placement or instances, conditions, finally, warnings and the run command', () => {
    const preview: PlanPreview = toPlanPreview(WIRE_PREVIEW);
    const runCommand = shellCommand(['drover', 'run', 'deploy.yaml', '-p', 'version=v1.2', '-p', 'note=two words', '--plan-hash', preview.hash]);
    expect(planText(preview, { workflowArg: 'deploy.yaml', runCommand })).toBe(
      [
        'Plan for deploy (deploy.yaml)',
        "Params: 'note=two words' version=v1.2",
        '',
        'Wave 1',
        '  build    run      role=builder, one agent',
        '      agents now:     b-1 (connected), b-2 (disconnected, draining)',
        '      runs on:        b-1',
        '',
        'Wave 2',
        '  ship     command  role=web, every matching agent, 1 at a time, up to 1 failure tolerated',
        '      needs:          build',
        "      when:           params.version != ''",
        '      agents now:     web-1 (connected), web-2 (lost)',
        '      instances (2):  ship[web-1], ship[web-2]',
        '  migrate  script   role=db, one agent, waits up to 10m when none is usable',
        '      needs:          build',
        '      agents now:     none match the target now',
        '      runs on:        no agent is available now; the run is accepted and the step waits up to 10m for one (target.wait)',
        '',
        'Wave 3 (finally: runs whatever happened before)',
        '  notify   http     any one agent',
        '      agents now:     b-1 (connected)',
        '      runs on:        b-1',
        '',
        'Warnings:',
        '  deploy.yaml:14:5: warning: no agent has ever matched role=db  (at steps[2].target)',
        '',
        'Plan hash: abc123',
        'Start exactly this plan (refused if it has changed by then):',
        "  drover run deploy.yaml -p version=v1.2 -p 'note=two words' --plan-hash abc123",
        '',
      ].join('\n'),
    );
  });

  it('plan - a registry plan names its version; long lists are cut with a count', () => {
    const many = Array.from({ length: 12 }, (_, i) => `fan[h-${i}]`);
    const preview = toPlanPreview({
      ...WIRE_PREVIEW,
      version: 3,
      problems: [],
      waves: [{ index: 0, steps: [{ ...WIRE_PREVIEW.waves[1].steps[0], needs: [], when: '', instances: many }] }],
    });
    const text = planText(preview, { workflowArg: 'deploy', runCommand: 'drover run deploy --plan-hash abc123' });
    expect(text.split('\n')[0]).toBe('Plan for deploy (version 3 from the registry)');
    expect(text).toContain('instances (12):  fan[h-0], fan[h-1], fan[h-2], fan[h-3], fan[h-4], fan[h-5], fan[h-6], fan[h-7], … (4 more instances; -o json lists all)');
  });
});

describe('sdk validate and registry output', () => {
  it('validate - problems print compiler-style, one per line, then a summary', () => {
    expect(formatProblemLine('wf.yaml', { path: 'steps[1].needs[0]', line: 12, column: 7, message: 'unknown step "buld" (did you mean "build"?)', severity: 'error' })).toBe(
      'wf.yaml:12:7: error: unknown step "buld" (did you mean "build"?)  (at steps[1].needs[0])',
    );
    expect(formatProblemLine('wf.yaml', { path: '', line: 0, column: 0, message: 'first\nsecond', severity: 'warning' })).toBe('wf.yaml: warning: first\n    second');
    expect(validationText('wf.yaml', { workflow: 'deploy', valid: true, problems: [] })).toBe('wf.yaml: valid (workflow deploy)\n');
    const invalid = validationText('wf.yaml', {
      workflow: 'deploy',
      valid: false,
      problems: [
        { path: 'steps[0].run', line: 9, column: 10, message: 'no ${{ in shell text', severity: 'error' },
        { path: 'steps[1].target', line: 14, column: 5, message: 'no agent matches', severity: 'warning' },
      ],
    });
    expect(invalid).toBe(
      'wf.yaml:9:10: error: no ${{ in shell text  (at steps[0].run)\nwf.yaml:14:5: warning: no agent matches  (at steps[1].target)\nwf.yaml: invalid, 1 error, 1 warning\n',
    );
  });

  it('registry - list table, show header and apply lines', () => {
    const w = { name: 'deploy', version: 3, versions: 4, hash: 'h', createdAt: NOW - 120_000, description: 'Roll out\nmore text', source: '', changed: true };
    const lines = workflowsTable([w], plainView(NOW)).split('\n');
    expect(lines[0]).toMatch(/^NAME\s+LATEST\s+VERSIONS\s+UPDATED\s+DESCRIPTION$/);
    expect(lines[1]).toMatch(/^deploy\s+3\s+4\s+2m ago\s+Roll out$/);
    expect(workflowsTable([], plainView(NOW))).toBe(`no workflows registered; store one with: ${cli()} workflow apply FILE\n`);
    expect(workflowHeader(w, NOW)).toContain('Version:      3 (latest is 4)\n');
    expect(workflowHeader({ ...w, version: 4 }, NOW)).toContain('Version:      4 (latest)\n');
    expect(applyLine(w)).toBe('deploy: version 3 stored\n');
    expect(applyLine({ ...w, changed: false })).toBe('deploy: unchanged (version 3)\n');
  });
});
