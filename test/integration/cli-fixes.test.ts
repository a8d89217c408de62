/**
 * What a new user ran into, against a real control plane and the agents of
 * `drover dev` (same names and labels): the onboarding example with both
 * roles, logs of an unknown run or step, a plan nothing can start, a bad
 * param, a URL for --server, and why a step waits for an agent that went away.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEV_AGENTS } from '../../sdk/cli/dev/sandbox.js';
import { DroverClient, InvalidParamsError, RunNotFoundError, StepNotFoundError } from '../../sdk/index.js';
import { cli, startAgent, startServer, tempDir, waitFor, type AgentProc, type ServerProc } from '../helpers/cluster.js';

const ONBOARDING = resolve(import.meta.dirname, '../../examples/onboarding.yaml');
let server: ServerProc;
let client: DroverClient;
const agents = new Map<string, AgentProc>();

beforeAll(async () => {
  server = await startServer();
  for (const a of DEV_AGENTS) agents.set(a.name, startAgent(server, a.name, a.labels));
  client = new DroverClient(server.clientOptions);
  await waitFor(async () => (await client.fleet.list()).filter((a) => a.state === 'connected').length === DEV_AGENTS.length, 30_000, () => 'the three dev agents to connect');
});
afterAll(() => client?.close());

describe('onboarding example - the whole scenario on the dev fleet', () => {
  it('onboarding example - both roles run green, each granting its own cloud apps and skipping the other', async () => {
    for (const [user, role, granted, skipped] of [
      ['alice', 'engineering', 'git\nci\ncloud-console\n', 'grant-sales-apps'],
      ['bob', 'sales', 'crm\nquoting\n', 'grant-engineering-apps'],
    ] as const) {
      const evidence = tempDir('drover-onboarding-');
      const run = await (await client.runs.launch(ONBOARDING, { username: user, role, evidence_dir: evidence })).wait();
      expect(run.status, JSON.stringify(run.steps.map((s) => [s.id, s.status, s.message]))).toBe('succeeded');
      const byId = Object.fromEntries(run.steps.map((s) => [s.id, s]));
      expect(byId[skipped].status).toBe('skipped');
      expect(byId['provision-laptop'].agent).toBe('assets-1');
      expect(byId['create-account'].agent).toBe('dir-1');
      expect(JSON.parse(readFileSync(join(evidence, 'accounts', `${user}.json`), 'utf8'))).toMatchObject({ user, groups: ['staff', role] });
      expect(readFileSync(join(evidence, 'collaboration', `${user}.txt`), 'utf8')).toBe('calendar\nchat\nwiki\n');
      expect(readFileSync(join(evidence, 'licences', `${user}.txt`), 'utf8')).toBe('office-suite\nmail-seat\nchat-seat\n');
      expect(readFileSync(join(evidence, 'grants', `${user}.txt`), 'utf8')).toBe(granted);
      expect(existsSync(join(evidence, 'laptops', `${user}.txt`))).toBe(true);
      expect(readFileSync(join(evidence, `welcome-${user}.txt`), 'utf8')).toMatch(new RegExp(`^${user} \\(${role}\\): laptop LT-\\d+, mail and collaboration tools ready, 3 licences\\n$`));
    }
  });

  it('onboarding example - the run --help example with -p role=sales is accepted', async () => {
    const help = await cli(['run', '--help']);
    const example = /drover (run examples\/onboarding\.yaml -p username=bob -p role=sales)/.exec(help.stdout)?.[1];
    expect(example).toBeTruthy();
    const plan = await cli(['plan', ONBOARDING, '-p', 'username=bob', '-p', 'role=sales'], server.env);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/when:\s+params\.role == 'sales'/);
  });
});

describe('cli fixes - errors a new user ran into', () => {
  it('cli fixes - logs of an unknown run end at once with RUN_NOT_FOUND (CLI exit 1, SDK rejects)', async () => {
    const res = await cli(['logs', 'r-000000-000000-deadbeef'], server.env, 10_000);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/^error: no run with id "r-000000-000000-deadbeef"/);
    const lines = async () => {
      for await (const _ of client.logs('r-000000-000000-deadbeef', '', { follow: true })) void _;
    };
    await expect(lines()).rejects.toBeInstanceOf(RunNotFoundError);
  });

  it('cli fixes - logs of a step the run does not have name it, suggest the closest and list the steps', async () => {
    const run = await (await client.runs.launch(ONBOARDING, { username: 'carol', evidence_dir: tempDir('drover-onboarding-') })).wait();
    const res = await cli(['logs', run.id, 'setup-mai'], server.env, 10_000);
    expect(res.code).toBe(1);
    expect(res.stdout).toBe('');
    expect(res.stderr).toContain(`error: run ${run.id} has no step "setup-mai" (did you mean "setup-mail"?)\n`);
    expect(res.stderr).toContain('hint: its steps: create-account, provision-laptop, setup-mail, assign-licences, grant-engineering-apps, grant-sales-apps, welcome-pack, notify;');
    const err = await (async () => {
      for await (const _ of client.logs(run.id, 'nosuchstep')) void _;
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StepNotFoundError);
  });

  it('cli fixes - a plan whose every matching agent is draining exits 1 with the reason and offers no hash', async () => {
    await client.fleet.drain('dir-1', true);
    try {
      const res = await cli(['plan', ONBOARDING, '-p', 'username=dan'], server.env);
      expect(res.code).toBe(1);
      expect(res.stdout).toMatch(/Cannot start now:\n.*every agent matching role=directory is draining/);
      expect(res.stdout).not.toMatch(/plan-hash|Plan hash/);
      expect(res.stderr).toMatch(/^error: a run of onboard-employee would be refused now: every agent matching role=directory is draining\n/);
    } finally {
      await client.fleet.drain('dir-1', false);
    }
  });

  it('cli fixes - a bad param value is INVALID_PARAMS with its path', async () => {
    const err = await client.runs.launch(ONBOARDING, { username: 'Bob', role: 'marketing' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidParamsError);
    expect((err as InvalidParamsError).code).toBe('INVALID_PARAMS');
    expect((err as InvalidParamsError).problems.map((p) => [p.path, p.message])).toEqual([
      ['params.username', 'param "username" must match /^[a-z][a-z0-9-]{1,31}$/, got "Bob"'],
      ['params.role', 'param "role" must be one of engineering, sales, got "marketing"'],
    ]);
  });

  it('cli fixes - --server with a URL or without a port names the HOST:PORT form', async () => {
    const url = await cli(['fleet', '--server', `http://${server.address}`], server.env, 10_000);
    expect(url.code).toBe(1);
    expect(url.stderr).toBe(
      `error: "http://${server.address}" is not a control plane address: it takes HOST:PORT without a scheme (drover speaks gRPC, not http://); use ${server.address}\n` +
        `hint: --server, DROVER_ADDR and the config file's "address" take HOST:PORT, e.g. --server ${server.address}\n`,
    );
    const bare = await cli(['fleet', '--server', '127.0.0.1'], server.env, 10_000);
    expect(bare.stderr).toMatch(/^error: "127\.0\.0\.1" is not a control plane address: it needs the port; use 127\.0\.0\.1:7400\n/);
  });
});

describe('waiting - why a step does not move', () => {
  it('waiting - a step placed on an agent that went away says so in the API, drover status and run --follow', async () => {
    await agents.get('assets-1')!.stop('SIGKILL');
    await waitFor(async () => (await client.fleet.get('assets-1')).state === 'disconnected', 15_000, () => 'assets-1 to be seen disconnected');
    const handle = await client.runs.launch(ONBOARDING, { username: 'erin', evidence_dir: tempDir('drover-onboarding-') });
    const waiting = /^waiting for agent assets-1, disconnected \d+ s ago; lost after 60 s \(in \d+ s\)$/;
    const run = await waitFor(async () => {
      const r = await client.runs.get(handle.id);
      return waiting.test(r.steps.find((s) => s.id === 'provision-laptop')!.waiting) && r;
    }, 15_000, () => 'provision-laptop to wait for assets-1');
    expect(run.steps.find((s) => s.id === 'welcome-pack')!.waiting).toMatch(/^waiting for needs: provision-laptop/);
    expect(run.steps.find((s) => s.id === 'create-account')!.waiting).toBe('');
    const status = await cli(['status', handle.id], server.env);
    expect(status.stdout).toMatch(/\nWaiting:\n {2}provision-laptop: waiting for agent assets-1, disconnected \d+ s ago; lost after 60 s/);
    expect(status.stdout).toMatch(/\nprovision-laptop\s+assets-1\s+pending\s+-\s+-\s/);
    const follow = await cli(['run', ONBOARDING, '-p', 'username=frank', '-p', `evidence_dir=${tempDir('drover-onboarding-')}`, '--follow'], server.env, 8_000).catch((e: Error) => e.message);
    expect(follow).toMatch(/provision-laptop\s+waiting\s+for agent assets-1, disconnected \d+ s ago; lost after 60 s/);
    await client.runs.cancel(handle.id);
  });
});
