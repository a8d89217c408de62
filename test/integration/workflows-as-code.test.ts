/**
 * Workflows as code: `drover validate` and `drover plan --fleet` work with no
 * control plane (the CLI runs the control plane's compiler itself) and say
 * exactly what the control plane says; `--server` adds the checks that need
 * its fleet and registry.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DroverClient, InvalidInputError, parseFleetSnapshot, planWorkflow } from '../../sdk/index.js';
import { cli, ENTRY, startAgent, startServer, tempDir, waitFor, workflowFile, type ServerProc } from '../helpers/cluster.js';

const dir = tempDir('drover-wac-');
/** Whether this machine can run a process in a network namespace of its own, with no network at all (`unshare -rn`). */
const NETLESS = spawnSync('unshare', ['-rn', 'true']).status === 0;
/** The CLI in such a process. */
const netlessCli = (args: string[], env: NodeJS.ProcessEnv) => {
  const r = spawnSync('unshare', ['-rn', process.execPath, ENTRY.cli, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};
/** No control plane named (no config file either), and none listening where the defaults point. */
const OFFLINE = { DROVER_ADDR: '', DROVER_TOKEN: '', DROVER_CA: '', DROVER_CONFIG: '', XDG_CONFIG_HOME: dir };
/** A control plane named that nothing answers for: the process has no network to speak of. */
const BOGUS = { ...OFFLINE, DROVER_ADDR: '127.0.0.1:1' };

const examples = readdirSync('examples').filter((f) => /\.(ya?ml|json)$/.test(f)).map((f) => join('examples', f));

/** One document per kind of error the compiler reports, with a line of what it says. */
const BAD: Record<string, { text: string; says: string }> = {
  yaml: { text: 'name: x\nsteps:\n  - id: a\n    run: [unclosed\n', says: ':5:1: error: invalid YAML:' },
  shape: { text: 'name: x\nsteps:\n  - id: a\n    neds: [b]\n    run: echo\n', says: ':4:5: error: unknown field "neds" (did you mean "needs"?)' },
  'unknown-need': { text: 'name: x\nsteps:\n  - id: build\n    run: echo\n  - id: t\n    needs: [biuld]\n    run: echo\n', says: ':6:13: error: unknown step "biuld" in needs (did you mean "build"?)' },
  cycle: { text: 'name: x\nsteps:\n  - id: a\n    needs: [b]\n    run: echo\n  - id: b\n    needs: [a]\n    run: echo\n', says: ':4:5: error: dependency cycle: a -> b -> a' },
  'shell-expression': { text: 'name: x\nsteps:\n  - id: a\n    run: echo ${{ params.y }}\n', says: ':4:5: error: an expression may not be pasted into shell text' },
  'expression-ref': { text: 'name: x\nsteps:\n  - id: a\n    env: { X: "${{ steps.zz.outputs.y }}" }\n    run: echo\n', says: ':4:12: error: expression refers to step "zz", which is not in this step\'s needs; add it to needs' },
  condition: { text: 'name: x\nsteps:\n  - id: a\n    when: "params.n =="\n    run: echo\n', says: ':4:5: error: invalid expression "params.n =="' },
  duration: { text: 'name: x\nsteps:\n  - id: a\n    timeout: 5 minutes\n    run: echo\n', says: ':4:5: error: not a duration' },
  params: { text: 'name: x\nparams:\n  n: { type: strin }\nsteps:\n  - id: a\n    run: echo\n', says: ':3:8: error: Invalid option: expected one of "string"|"number"|"boolean"|"list", got "strin" (did you mean "string"?)' },
  trigger: { text: 'name: x\ntriggers:\n  - { name: n, cron: "61 * * * *" }\nsteps:\n  - id: a\n    run: echo\n', says: ':3:16: error: "61 * * * *" is not a cron expression' },
  'not-a-workflow': { text: '- just\n- a list\n', says: ':1:1: error: a workflow document is a mapping with "name" and "steps"' },
};

const DEPLOY = `name: deploy-web
params:
  version: { type: string, pattern: "^v[0-9.]+$" }
  hosts: { type: list, default: [a, b] }
steps:
  - id: build
    target: { labels: { role: builder } }
    run: echo "building $VERSION"
    env: { VERSION: "\${{ params.version }}" }
  - id: ship
    needs: [build]
    target: { labels: { role: web }, strategy: all, maxParallel: 1 }
    command: [echo, shipping, "\${{ params.version }}"]
  - id: smoke
    needs: [ship]
    forEach: \${{ params.hosts }}
    target: { agent: build-1 }
    env: { HOST: "\${{ item }}" }
    run: echo "smoke $HOST"
  - id: canary
    needs: [build]
    target: { labels: { role: canary }, wait: 5m }
    run: echo canary
finally:
  - id: report
    run: echo done
`;

let server: ServerProc;
let client: DroverClient;

beforeAll(async () => {
  server = await startServer();
  startAgent(server, 'build-1', { role: 'builder' });
  startAgent(server, 'web-1', { role: 'web', site: 'ams' });
  startAgent(server, 'web-2', { role: 'web', site: 'fra' });
  client = new DroverClient(server.clientOptions);
  await waitFor(async () => (await client.fleet.list()).filter((a) => a.state === 'connected').length === 3, 20_000, () => 'three agents to connect');
});

afterAll(() => client?.close());

describe('validate - offline, as the control plane would', () => {
  it('validate - every example is valid with no control plane, and with a DROVER_ADDR nothing answers at', async () => {
    const offline = await cli(['validate', ...examples], OFFLINE);
    expect(offline.code, offline.stdout + offline.stderr).toBe(0);
    expect(offline.stderr).toBe('');
    expect(offline.stdout).toBe(examples.map((f) => `${f}: valid (workflow ${/^name: (\S+)/m.exec(readFileSync(f, 'utf8'))![1]})\n`).join(''));

    const bogus = await cli(['validate', ...examples], BOGUS);
    expect(bogus.code, bogus.stdout + bogus.stderr).toBe(0);
    expect(bogus.stdout).toBe(offline.stdout);
    expect(bogus.stderr).toBe('note: no control plane answered at 127.0.0.1:1 (DROVER_ADDR), so the fleet checks were skipped; the files were checked offline\n');
  });

  it('validate - each kind of error: FILE:LINE:COL, the same lines as the control plane gives, exit code 1', async () => {
    for (const [name, { text, says }] of Object.entries(BAD)) {
      const file = workflowFile(dir, `${name}.yaml`, text);
      const offline = await cli(['validate', file], OFFLINE);
      expect(offline.code, `${name}: ${offline.stdout}${offline.stderr}`).toBe(1);
      expect(offline.stdout, name).toContain(`${file}${says}`);
      expect(offline.stdout, name).toMatch(new RegExp(`^${file}: invalid, \\d+ errors?\\n$`, 'm'));
      const remote = await cli(['validate', file, '--server', server.address], server.env);
      expect(remote.code, name).toBe(1);
      expect(remote.stdout, name).toBe(offline.stdout);
      // The SDK offline, and the JSON the CLI prints, are the control plane's answer too.
      expect(await client.workflows.validate(file), name).toEqual(await client.workflows.validate(file, { remote: true }));
      expect(JSON.parse((await cli(['validate', file, '-o', 'json'], OFFLINE)).stdout), name).toEqual({ file, ...(await client.workflows.validate(file, { remote: true })) });
    }
  });

  it.skipIf(!NETLESS)('validate - in a process with no network at all (unshare -rn), examples are valid and errors found, as with one', async () => {
    const offline = await cli(['validate', ...examples], OFFLINE);
    expect(netlessCli(['validate', ...examples], BOGUS)).toMatchObject({ code: 0, stdout: offline.stdout });
    const bad = workflowFile(dir, 'netless-bad.yaml', BAD.shape.text);
    expect(netlessCli(['validate', bad], BOGUS)).toMatchObject({ code: 1, stdout: (await cli(['validate', bad], OFFLINE)).stdout });
    expect(netlessCli(['schema'], OFFLINE)).toMatchObject({ code: 0, stdout: readFileSync('schema/workflow.schema.json', 'utf8') });
  });

  it('validate - a missing file is its own problem; the others are still checked', async () => {
    const res = await cli(['validate', 'no-such.yaml', examples[0]], OFFLINE);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain('no-such.yaml: error: file not found\n');
    expect(res.stdout).toContain(`${examples[0]}: valid`);
  });

  it('validate - --server adds the fleet and registry checks; a --server that does not answer is an error', async () => {
    const file = workflowFile(dir, 'fleet-checks.yaml', 'name: fleet-checks\nsteps:\n  - id: a\n    target: { labels: { role: nothing } }\n    run: echo\n');
    const offline = await cli(['validate', file], OFFLINE);
    expect(offline).toMatchObject({ code: 0, stdout: `${file}: valid (workflow fleet-checks)\n` });

    const remote = await cli(['validate', file], server.env);
    expect(remote.code, remote.stderr).toBe(0);
    expect(remote.stdout).toBe(`${file}:4:5: warning: no agent in the fleet matches role=nothing now  (at steps[0].target)\n${file}: valid (workflow fleet-checks), 1 warning\n`);
    expect(remote.stderr).toBe('');

    await client.workflows.apply(file);
    expect((await cli(['validate', file], server.env)).stderr).toBe(`${file}: note: fleet-checks@1 is this file, the latest registered version\n`);
    writeFileSync(file, readFileSync(file, 'utf8') + '# changed\n');
    expect((await cli(['validate', file], server.env)).stderr).toContain(`${file}: note: differs from fleet-checks@1, the latest registered version`);
    expect((await client.workflows.validate(file, { remote: true })).registry).toEqual({ latest: 1, sameAs: 0 });

    const down = await cli(['validate', file, '--server', '127.0.0.1:1'], OFFLINE);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('error: no drover control plane answered at 127.0.0.1:1');
  });
});

describe('plan --fleet - offline, against a saved fleet', () => {
  it('plan - offline against `drover fleet -o json` equals the live plan: waves, matches, instances, hash, warnings', async () => {
    const file = workflowFile(dir, 'deploy.yaml', DEPLOY);
    const fleet = await cli(['fleet', '-o', 'json'], server.env);
    expect(fleet.code, fleet.stderr).toBe(0);
    const fleetFile = join(dir, 'fleet.json');
    writeFileSync(fleetFile, fleet.stdout);

    const live = await cli(['plan', file, '-p', 'version=v1.2', '-o', 'json'], server.env);
    const offline = await cli(['plan', file, '-p', 'version=v1.2', '-o', 'json', '--fleet', fleetFile], BOGUS);
    expect(live.code, live.stderr).toBe(0);
    expect(offline.code, offline.stderr).toBe(0);
    const preview = JSON.parse(offline.stdout) as { hash: string; waves: { steps: { id: string; instances: string[]; agent: string }[] }[]; warnings: { message: string }[] };
    expect(preview).toEqual(JSON.parse(live.stdout));
    const steps = preview.waves.flatMap((w) => w.steps);
    expect(steps.find((s) => s.id === 'ship')?.instances).toEqual(['ship[web-1]', 'ship[web-2]']);
    expect(steps.find((s) => s.id === 'smoke')?.instances).toEqual(['smoke[0]', 'smoke[1]']);
    expect(steps.find((s) => s.id === 'build')?.agent).toBe('build-1');
    expect(preview.warnings.map((w) => w.message)).toContain('no agent in the fleet matches role=canary now; the run is accepted and the step waits up to 5m for one (target.wait)');

    if (NETLESS) expect(netlessCli(['plan', file, '-p', 'version=v1.2', '-o', 'json', '--fleet', fleetFile], BOGUS)).toMatchObject({ code: 0, stdout: offline.stdout });

    const liveText = await cli(['plan', file, '-p', 'version=v1.2'], server.env);
    const offlineText = await cli(['plan', file, '-p', 'version=v1.2', '--fleet', fleetFile], OFFLINE);
    expect(offlineText.stdout).toBe(liveText.stdout);
    expect(offlineText.stdout).toContain(`Plan hash: ${preview.hash}`);

    // The SDK, both ways; and the hash is what a run starts under.
    const agents = parseFleetSnapshot(fleet.stdout, fleetFile);
    expect(await planWorkflow(file, { version: 'v1.2' }, { agents })).toEqual(await client.workflows.plan(file, { version: 'v1.2' }));
    const handle = await client.runs.launch(file, { version: 'v1.2' }, { expectPlanHash: preview.hash });
    expect(handle.run.planHash).toBe(preview.hash);
    await client.runs.cancel(handle.id);
  });

  it('plan - offline errors: bad params and documents as the control plane says them, a refused run exits 1, a bad fleet file is named', async () => {
    const file = workflowFile(dir, 'deploy2.yaml', DEPLOY);
    const fleetFile = join(dir, 'fleet2.json');
    writeFileSync(fleetFile, (await cli(['fleet', '-o', 'json'], server.env)).stdout);

    const badParam = await cli(['plan', file, '-p', 'version=latest', '--fleet', fleetFile], OFFLINE);
    const liveBadParam = await cli(['plan', file, '-p', 'version=latest'], server.env);
    expect(badParam.code).toBe(1);
    expect(badParam.stderr).toBe(liveBadParam.stderr);
    expect(badParam.stderr).toContain('with the params');

    const empty = join(dir, 'empty.json');
    writeFileSync(empty, '[]');
    const refused = await cli(['plan', file, '-p', 'version=v1', '--fleet', empty], OFFLINE);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('would be refused now');
    expect(refused.stdout).not.toContain('--plan-hash');

    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '[{"name": "a", "state": "up", "labels": {}}]');
    const bad = await cli(['plan', file, '-p', 'version=v1', '--fleet', broken], OFFLINE);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`error: ${broken}: agent 1 (a): "state" must be one of connected, disconnected, lost, got "up"`);
    expect(bad.stderr).toContain('hint: save the fleet with `');
    expect((await cli(['plan', file, '--fleet', join(dir, 'none.json')], OFFLINE)).stderr).toContain(`error: --fleet ${join(dir, 'none.json')}: no such file`);

    const ref = await planWorkflow('deploy-web', {}, { agents: [] }).catch((e: unknown) => e);
    expect(ref).toBeInstanceOf(InvalidInputError);
    expect((ref as Error).message).toContain('cannot be planned offline');
  });
});

describe('workflow diff - a file against its registered version', () => {
  it('workflow diff - exit 0 when equal, 1 when different (step by step), 2 when it cannot compare', async () => {
    const base = 'name: diffed\nparams:\n  role: { type: string, default: eng }\nsteps:\n  - id: a\n    run: echo a\n    timeout: 30s\n  - id: b\n    needs: [a]\n    run: |\n      echo one\n      echo two\n  - id: gone\n    run: echo gone\n';
    const file = workflowFile(dir, 'diffed.yaml', base);
    const unregistered = await cli(['workflow', 'diff', file], server.env);
    expect(unregistered.code).toBe(1);
    expect(unregistered.stdout).toContain(`${file} against diffed (not registered):\n`);
    expect(unregistered.stdout).toContain('3 steps added, 0 removed, 0 changed');

    await client.workflows.apply(file);
    // Comments and layout are no change.
    writeFileSync(file, `# a comment\n${base.replace('timeout: 30s', 'timeout:   30s')}`);
    expect(await cli(['workflow', 'diff', file], server.env)).toEqual({ code: 0, stdout: `${file}: no changes against diffed@1\n`, stderr: '' });

    writeFileSync(file, base.replace('timeout: 30s', 'timeout: 1m').replace('default: eng', 'default: ops').replace('echo two', 'echo 2').replace('  - id: gone\n    run: echo gone\n', '  - id: new\n    needs: [b]\n    run: echo new\n'));
    const changed = await cli(['workflow', 'diff', file], server.env);
    expect(changed.code, changed.stderr).toBe(1);
    expect(changed.stdout).toBe(
      [
        `${file} against diffed@1:`,
        '  ~ params.role.default: "eng" => "ops"',
        '~ step a',
        '    ~ timeout: "30s" => "1m"',
        '~ step b',
        '    ~ run:',
        '          echo one',
        '        - echo two',
        '        + echo 2',
        '+ step new added',
        '    + id: "new"',
        '    + needs: ["b"]',
        '    + run: "echo new"',
        '- step gone removed',
        '    - id: "gone"',
        '    - run: "echo gone"',
        '1 step added, 1 removed, 2 changed, 1 workflow field changed',
        '',
      ].join('\n'),
    );
    const json = JSON.parse((await cli(['workflow', 'diff', file, 'diffed@1', '-o', 'json'], server.env)).stdout) as { equal: boolean; version: number; steps: { id: string; change: string }[] };
    expect(json).toMatchObject({ file, workflow: 'diffed', version: 1, equal: false });
    expect(json.steps.map((s) => `${s.change} ${s.id}`)).toEqual(['changed a', 'changed b', 'added new', 'removed gone']);

    const noVersion = await cli(['workflow', 'diff', file, 'diffed@9'], server.env);
    expect(noVersion.code).toBe(2);
    expect(noVersion.stderr).toContain('error: workflow "diffed" has no version 9');
    const noFile = await cli(['workflow', 'diff', join(dir, 'none.yaml')], server.env);
    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toContain('error: workflow file not found');
    const noServer = await cli(['workflow', 'diff', file], BOGUS);
    expect(noServer.code).toBe(2);
    expect(noServer.stderr).toContain('error: no drover control plane answered at 127.0.0.1:1');
  });
});

/** Help text with its line wrapping undone. */
const flat = (text: string) => text.replace(/\s+/g, ' ');

describe('help - the new commands and flags are documented', () => {
  it('help - `drover --help` lists every command, each of which has its own help, and the new flags are listed', async () => {
    const top = await cli(['--help'], OFFLINE);
    const section = top.stdout.slice(top.stdout.indexOf('Commands:'), top.stdout.indexOf('\n\n', top.stdout.indexOf('Commands:')));
    const commands = [...section.matchAll(/^  ([a-z]+)(?: \[options\]| <| \[|\s{2})/gm)].map((m) => m[1]).filter((c) => c !== 'help');
    expect(commands).toEqual(expect.arrayContaining(['validate', 'plan', 'schema', 'run', 'workflow']));
    for (const c of commands) {
      const h = await cli([c, '--help'], OFFLINE);
      expect(h.code, `${c}: ${h.stderr}`).toBe(0);
      expect(h.stdout, c).toContain(`Usage: drover ${c}`);
    }
    expect((await cli(['workflow', '--help'], OFFLINE)).stdout).toMatch(/^\s+diff \[options\] <file> \[workflow\]\s+show what changes between a file and its\s+registered version$/m);
    expect(flat((await cli(['workflow', 'diff', '--help'], OFFLINE)).stdout)).toContain('Exit code 0 when the contents are equal, 1 when they differ, 2 when');
    expect(flat((await cli(['plan', '--help'], OFFLINE)).stdout)).toContain('--fleet <file>');
    expect(flat((await cli(['run', '--help'], OFFLINE)).stdout)).toContain('--local');
    expect(flat((await cli(['validate', '--help'], OFFLINE)).stdout)).toContain('No control plane is needed and none is contacted');
  });
});

describe('schema - the JSON Schema for editors', () => {
  it('schema - `drover schema` prints schema/workflow.schema.json, with no control plane', async () => {
    const res = await cli(['schema'], BOGUS);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe(readFileSync('schema/workflow.schema.json', 'utf8'));
    for (const f of examples) expect(readFileSync(f, 'utf8').split('\n')[0], f).toBe('# yaml-language-server: $schema=../schema/workflow.schema.json');
  });
});
