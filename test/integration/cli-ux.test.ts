/**
 * The CLI against a real control plane and agents: --watch on fleet, runs
 * and status (stdout is a pipe, so each new table follows a blank line), run
 * ids by unique prefix, -o formats and colour, the config file, completion.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DroverClient } from '../../sdk/index.js';
import { cli, ENTRY, startAgent, startServer, tempDir, waitFor, type ServerProc } from '../helpers/cluster.js';

let server: ServerProc;
let client: DroverClient;
const dir = tempDir('drover-cli-ux-');
/** No config file of the person running the tests is read. */
const isolated = () => ({ ...server.env, XDG_CONFIG_HOME: dir, DROVER_CONFIG: '', NO_COLOR: undefined, FORCE_COLOR: undefined });
const ESC = '\u001b[';

const doc = (name: string, run: string, params: Record<string, unknown> = {}) => ({ name, params, steps: [{ id: 'only', target: { labels: { pool: 'p' } }, run }] });

beforeAll(async () => {
  server = await startServer();
  startAgent(server, 'ux-1', { pool: 'p' });
  client = new DroverClient(server.clientOptions);
  await waitFor(async () => (await client.fleet.list()).some((a) => a.state === 'connected'), 20_000, () => 'the agent to connect');
});

afterAll(() => client?.close());

/** A `drover … --watch` process whose stdout is read table by table. */
function watching(args: string[]): { child: ChildProcessWithoutNullStreams; tables: () => string[]; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [ENTRY.cli, ...args], { env: { ...process.env, ...isolated() } });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  return { child, tables: () => out.split('\n\n').filter((t) => t.trim()), exited };
}

describe('cli ux - watch, prefixes, formats, config, completion', () => {
  it('cli ux - `fleet --watch` prints a table, a new one when an agent connects, and exits 0 on Ctrl-C', async () => {
    const w = watching(['fleet', '--watch']);
    const first = await waitFor(() => w.tables()[0]?.includes('ux-1') && w.tables()[0], 20_000, () => `a first table: ${w.tables().join('\n--\n')}`);
    expect(first).toMatch(/^NAME\s+STATE\s+TRANSPORT/);
    expect(first).not.toContain('ux-2');
    startAgent(server, 'ux-2', { pool: 'q' });
    await waitFor(() => w.tables().some((t) => /ux-2\s+connected/.test(t)), 20_000, () => `a table with ux-2: ${w.tables().join('\n--\n')}`);
    w.child.kill('SIGINT');
    expect(await w.exited).toBe(0);
  });

  it('cli ux - `runs --watch` shows a new run appear and succeed, steps counted, params summarised', async () => {
    const w = watching(['runs', '--watch', '--workflow', 'watched']);
    await waitFor(() => w.tables()[0], 20_000, () => 'a first table');
    expect(w.tables()[0]).toBe('no runs\n');
    const handle = await client.runs.launch(doc('watched', 'sleep 0.3; echo hi', { who: { type: 'string' } }), { who: 'alice' });
    await waitFor(() => w.tables().some((t) => new RegExp(`${handle.id}\\s+watched\\s+succeeded\\s+1/1\\s+who=alice`).test(t)), 20_000, () => `the run succeeded: ${w.tables().join('\n--\n')}`);
    w.child.kill('SIGINT');
    expect(await w.exited).toBe(0);
  });

  it('cli ux - `status PREFIX --watch` follows the run and ends by itself with its exit code', async () => {
    const ok = await client.runs.launch(doc('status-ok', 'sleep 0.5'));
    const good = await cli(['status', ok.id.slice(0, -3), '--watch'], isolated());
    expect(good.code, good.stderr).toBe(0);
    expect(good.stdout.split('\n\n').at(-2) + good.stdout).toMatch(/Status:\s+succeeded/);
    const bad = await client.runs.launch(doc('status-bad', 'sleep 0.3; exit 4'));
    const failed = await cli(['status', bad.id, '--watch'], isolated());
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/Status:\s+failed/);
  });

  it('cli ux - run ids by unique prefix: status, logs, cancel; an ambiguous one names the candidates; a short one is refused', async () => {
    const a = await client.runs.launch(doc('prefix', 'echo from-prefix'));
    await client.runs.wait(a.id);
    const status = await cli(['status', a.id.slice(0, -2)], isolated());
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`Run:       ${a.id}\n`);
    const logs = await cli(['logs', a.id.slice(0, -2)], isolated());
    expect(logs.stdout).toContain('from-prefix');
    const long = await client.runs.launch(doc('prefix-cancel', 'sleep 30'));
    const cancel = await cli(['cancel', long.id.slice(0, -1)], isolated());
    expect(cancel.code, cancel.stderr).toBe(0);
    expect((await client.runs.wait(long.id)).status).toBe('cancelled');
    const ambiguous = await cli(['status', a.id.slice(0, 4)], isolated());
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toMatch(/^error: run id prefix "r-\d\d" matches \d+ runs: (r-\S+, ){4}r-\S+( and \d+ more)?\nhint: give more characters of the id\n/);
    await expect(client.runs.get(a.id.slice(0, 4))).rejects.toMatchObject({ code: 'AMBIGUOUS_RUN_ID', name: 'AmbiguousRunIdError' });
    const short = await cli(['status', 'r-2'], isolated());
    expect(short.stderr).toMatch(/^error: run id "r-2" is too short: give the whole id or at least 4 characters of it\n/);
    const none = await cli(['status', 'r-00000000'], isolated());
    expect(none.stderr).toMatch(/^error: no run with id "r-00000000"\n/);
  });

  it('cli ux - -o yaml and wide; an unknown format names the flag and the choices', async () => {
    const yaml = await cli(['fleet', '-o', 'yaml'], isolated());
    expect(yaml.stdout).toMatch(/^- name: ux-1\n/m);
    expect(yaml.stdout).toMatch(/lastSeen: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\n/);
    const wide = await cli(['fleet', '-o', 'wide'], isolated());
    expect(wide.stdout).toMatch(/^NAME\s+STATE.*LAST-SEEN\s+PEER\s+VERSION\s+CONNECTED\n/);
    const bad = await cli(['runs', '-o', 'xml'], isolated());
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("error: option '-o, --output <format>' argument 'xml' is invalid. Allowed choices are table, wide, json, yaml.");
  });

  it('cli ux - colour only when forced here (stdout is a pipe), never with NO_COLOR or -o json', async () => {
    await client.runs.wait((await client.runs.launch(doc('colour', 'exit 1'))).id);
    const forced = await cli(['runs'], { ...isolated(), FORCE_COLOR: '1' });
    expect(forced.stdout).toContain(`${ESC}31mfailed${ESC}39m`);
    for (const env of [{}, { FORCE_COLOR: '1', NO_COLOR: '1' }, { NO_COLOR: '' }]) {
      expect((await cli(['runs'], { ...isolated(), ...env })).stdout).not.toContain(ESC);
    }
    const json = await cli(['runs', '-o', 'json'], { ...isolated(), FORCE_COLOR: '1' });
    expect(json.stdout).not.toContain(ESC);
    expect((JSON.parse(json.stdout) as { createdAt: string }[])[0].createdAt).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('cli ux - the config file: address, tokenFile, ca and output; flags and environment win; a bad key is named with its line', async () => {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, server.creds.token + '\n');
    const file = join(dir, 'drover', 'config.yaml');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(dir, 'drover'), { recursive: true });
    writeFileSync(file, `# my fleet\naddress: ${server.address}\ntokenFile: ../token\nca: ${server.creds.caFile}\noutput: json\n`);
    const bare = { XDG_CONFIG_HOME: dir, DROVER_ADDR: '', DROVER_TOKEN: '', DROVER_CA: '' };
    const fromFile = await cli(['fleet'], bare);
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect((JSON.parse(fromFile.stdout) as { name: string }[]).map((a) => a.name)).toContain('ux-1');
    expect((await cli(['fleet', '-o', 'table'], bare)).stdout).toMatch(/^NAME\s+STATE/);
    expect((await cli(['fleet'], { ...bare, DROVER_OUTPUT: 'yaml' })).stdout).toMatch(/^- name: /);
    const wrongAddr = await cli(['fleet', '--server', '127.0.0.1:1'], bare, 60_000);
    expect(wrongAddr.code).toBe(1);
    writeFileSync(file, `address: ${server.address}\noutput: json\ntoken_file: x\n`);
    const bad = await cli(['fleet'], bare);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`error: config file ${file} line 3: unknown key "token_file"\n`);
    writeFileSync(file, `output: xml\n`);
    expect((await cli(['fleet'], bare)).stderr).toContain(`error: config file ${file} line 1: key "output": "xml" is not one of table, wide, json, yaml\n`);
  });

  it('cli ux - `drover completion bash` loads in bash and completes commands; zsh and fish scripts are generated', async () => {
    const script = await cli(['completion', 'bash']);
    expect(script.code, script.stderr).toBe(0);
    const file = join(dir, 'drover.bash');
    writeFileSync(file, script.stdout);
    const bash = await new Promise<{ code: number | null; out: string }>((res) => {
      const child = spawn('bash', ['-c', `source ${file}; complete -p drover; COMP_WORDS=(drover ru); COMP_CWORD=1; _drover; echo "\${COMPREPLY[*]}"; COMP_WORDS=(drover runs --w); COMP_CWORD=2; _drover; echo "\${COMPREPLY[*]}"`]);
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      child.once('exit', (code) => res({ code, out }));
    });
    expect(bash.code, bash.out).toBe(0);
    expect(bash.out).toBe('complete -F _drover drover\nrun runs\n--workflow --watch\n');
    const zsh = await cli(['completion', 'zsh']);
    expect(zsh.stdout).toMatch(/^#compdef drover\n/);
    const fish = await cli(['completion', 'fish']);
    expect(fish.stdout).toContain("complete -c drover -n '__fish_use_subcommand' -a 'fleet'");
  });
});
