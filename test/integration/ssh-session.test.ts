/**
 * The proxy agent's SSH session handling against an in-process ssh2 server
 * that plays a device the OpenSSH test server cannot: password logins by
 * keyboard-interactive, a prompt wrapped in ANSI escapes, a pager, and a
 * configuration that contains the password. The device pool's limits and
 * reuse are observed from the server's side (connections open at once).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import pino from 'pino';
import { Server, utils, type ServerChannel } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningShell } from '../../agent/executor/shell.js';
import { DevicePool } from '../../agent/executor/ssh/pool.js';
import { runSsh, type SshStepSpec } from '../../agent/executor/ssh/step.js';
import { DEFAULT_ERROR_PATTERN, DEFAULT_PROMPT } from '../../common/workflow/compiler/schema.js';
import { tempDir } from '../helpers/cluster.js';

const PASSWORD = 'Juniper-R0cks!';
const PROMPT = '\x1b[1madmin@mx1> \x1b[0m';
const CONFIG = Array.from({ length: 25 }, (_, i) => `set interfaces ge-0/0/${i} unit 0 family inet`);
CONFIG.splice(12, 0, `set system root-authentication plain-text-password "${PASSWORD}"`);

const dir = tempDir('drover-ssh-session-');
const hostKey = utils.generateKeyPairSync('ed25519');
let server: Server;
let port = 0;
let knownHosts: string;
const stats = { connections: 0, open: 0, maxOpen: 0, commands: [] as string[] };

/** A line-oriented CLI with echo, an ANSI prompt and a 10-line pager. */
function fakeCli(stream: ServerChannel) {
  let input = '';
  let paging: string[] | undefined;
  const page = () => {
    const chunk = paging!.splice(0, 10);
    stream.write(chunk.map((l) => `${l}\r\n`).join(''));
    if (paging!.length) stream.write('---(more)---');
    else {
      paging = undefined;
      stream.write(PROMPT);
    }
  };
  stream.write('--- JUNOS 23.2R1 built 2023-06-01\r\n');
  stream.write(PROMPT);
  stream.on('data', (d: Buffer) => {
    for (const ch of d.toString()) {
      if (paging) {
        if (ch === ' ') {
          stream.write('\r            \r');
          page();
        }
        continue;
      }
      if (ch !== '\n' && ch !== '\r') {
        input += ch;
        stream.write(ch);
        continue;
      }
      const line = input;
      input = '';
      stream.write('\r\n');
      stats.commands.push(line);
      if (line === 'show configuration | display set') {
        paging = [...CONFIG];
        page();
      } else if (line === 'show system uptime') {
        setTimeout(() => stream.write(`Current time: 2026-01-01 00:00:00 UTC\r\n${PROMPT}`), 300);
      } else {
        stream.write(`                  ^\r\nunknown command.\r\n${PROMPT}`);
      }
    }
  });
}

beforeAll(async () => {
  server = new Server({ hostKeys: [hostKey.private] }, (client) => {
    stats.connections++;
    stats.open++;
    stats.maxOpen = Math.max(stats.maxOpen, stats.open);
    client.on('close', () => stats.open--);
    client.on('error', () => undefined);
    client.on('authentication', (ctx) => {
      if (ctx.method !== 'keyboard-interactive') return ctx.reject(['keyboard-interactive']);
      ctx.prompt([{ prompt: 'Password: ', echo: false }], (answers) => (answers[0] === PASSWORD ? ctx.accept() : ctx.reject()));
    });
    client.on('ready', () => {
      client.on('session', (accept) => {
        const session = accept();
        session.on('pty', (ok) => ok?.());
        session.on('shell', (ok) => fakeCli(ok()));
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${hostKey.public.split(' ').slice(0, 2).join(' ')}\n`);
  writeFileSync(join(dir, 'mx-password'), `${PASSWORD}\n`);
});

afterAll(() => server?.close());

function pool(opts: { knownHosts?: string; acceptNew?: boolean } = {}) {
  return new DevicePool({
    agentName: 'proxy-test',
    credentials: { files: { mx: join(dir, 'mx-password') }, dir },
    hostKeys: { knownHosts: opts.knownHosts ?? knownHosts, acceptNew: opts.acceptNew ?? false },
    connectTimeoutMs: 5000,
    idleMs: 60_000,
    log: pino({ level: 'silent' }),
  });
}

const spec = (commands: string[], extra: Partial<SshStepSpec> = {}): SshStepSpec => ({
  device: 'mx1',
  host: '127.0.0.1',
  port,
  user: 'admin',
  credential: 'mx',
  commands: commands.map((command) => ({ command, name: '', timeoutMs: 0 })),
  errorPattern: DEFAULT_ERROR_PATTERN,
  mode: 'shell',
  prompt: DEFAULT_PROMPT,
  commandTimeoutMs: 5000,
  maxSessions: 1,
  ...extra,
});

async function step(p: DevicePool, runId: string, s: SshStepSpec) {
  const logs: string[] = [];
  const running: RunningShell = runSsh(s, p, runId, { timeoutMs: 0, log: (_stream, text) => logs.push(text.replace(/\n$/, '')) });
  return { result: await running.result, logs };
}

describe('ssh session handling against a scripted device', () => {
  it('ssh session - a password logs in by keyboard-interactive, the pager is answered, escapes are cleaned and the password is masked', async () => {
    const p = pool();
    const { result, logs } = await step(p, 'r-1', spec(['show configuration | display set']));
    p.closeAll();
    expect(result.spawnError).toBeUndefined();
    expect(result.exitCode).toBe(0);
    const lines = result.outputs!.out_0.split('\n');
    expect(lines).toHaveLength(26);
    expect(lines[0]).toBe('set interfaces ge-0/0/0 unit 0 family inet');
    expect(lines[12]).toBe('set system root-authentication plain-text-password "***"');
    expect(lines[25]).toBe('set interfaces ge-0/0/24 unit 0 family inet');
    expect(logs).toContain('[show configuration | display set] set system root-authentication plain-text-password "***"');
    expect(JSON.stringify({ result, logs })).not.toContain(PASSWORD);
  });

  it('ssh session - an error line of the device (Junos "unknown command.") fails the step', async () => {
    const p = pool();
    const { result } = await step(p, 'r-2', spec(['show chassis hardwre', 'show system uptime']));
    p.closeAll();
    expect(result.exitCode).toBe(1);
    expect(result.spawnError).toBe('command 1 "show chassis hardwre" on device mx1 failed: its output matched errorPattern: unknown command.; 1 later command was not run');
  });

  it('device pool - with maxSessions 2 two steps run at once on two sessions; with 1 the second waits and reuses the session', async () => {
    stats.maxOpen = stats.open;
    const before = stats.connections;
    const two = pool();
    const [a, b] = await Promise.all([
      step(two, 'r-3', spec(['show system uptime'], { maxSessions: 2 })),
      step(two, 'r-3', spec(['show system uptime'], { maxSessions: 2 })),
    ]);
    expect([a.result.exitCode, b.result.exitCode]).toEqual([0, 0]);
    expect(stats.connections - before).toBe(2);
    expect(stats.maxOpen).toBe(2);
    two.closeAll();

    const one = pool();
    const mid = stats.connections;
    const [c, d] = await Promise.all([step(one, 'r-4', spec(['show system uptime'])), step(one, 'r-4', spec(['show system uptime']))]);
    expect([c.result.exitCode, d.result.exitCode]).toEqual([0, 0]);
    expect(stats.connections - mid).toBe(1);
    expect([...c.logs, ...d.logs].filter((l) => l.startsWith('waiting for device'))).toEqual(['waiting for device mx1: 1 step using it, 1 allowed at a time']);
    expect(one.openSessions).toBe(1);
    one.endRun('r-4');
    expect(one.openSessions).toBe(0);
  });

  it("device pool - another run's step closes the first run's idle session before opening its own (never two at once)", async () => {
    await new Promise((r) => setTimeout(r, 100));
    stats.maxOpen = stats.open;
    const p = pool();
    const before = stats.connections;
    expect((await step(p, 'r-5', spec(['show system uptime']))).result.exitCode).toBe(0);
    expect((await step(p, 'r-6', spec(['show system uptime']))).result.exitCode).toBe(0);
    p.closeAll();
    expect(stats.connections - before).toBe(2);
    expect(stats.maxOpen).toBe(1);
  });

  it('ssh session - a changed host key is refused before the password is sent; accept-new adds an unknown one', async () => {
    const other = utils.generateKeyPairSync('ed25519').public.split(' ').slice(0, 2).join(' ');
    const wrong = join(dir, 'wrong_known_hosts');
    writeFileSync(wrong, `[127.0.0.1]:${port} ${other}\n`);
    const p = pool({ knownHosts: wrong });
    const { result } = await step(p, 'r-7', spec(['show system uptime']));
    expect(result.exitCode).toBe(255);
    expect(result.spawnError).toMatch(
      new RegExp(
        `^the host key of device mx1 \\(127\\.0\\.0\\.1:${port}\\) has CHANGED in ${wrong} \\(it presented ssh-ed25519 SHA256:\\S+\\); ` +
          `someone may be intercepting the connection, or the device was replaced; if it was replaced, remove the old key on this agent ` +
          `\\(ssh-keygen -R '\\[127\\.0\\.0\\.1\\]:${port}' -f ${wrong}\\) and add the new one; no credential was sent$`,
      ),
    );

    const fresh = join(dir, 'fresh_known_hosts');
    const q = pool({ knownHosts: fresh, acceptNew: true });
    expect((await step(q, 'r-8', spec(['show system uptime']))).result.exitCode).toBe(0);
    q.closeAll();
    expect(readFileSync(fresh, 'utf8')).toBe(`[127.0.0.1]:${port} ${hostKey.public.split(' ').slice(0, 2).join(' ')}\n`);
  });

  it('ssh session - a wrong password is AUTH_FAILED with the credential named, never the password', async () => {
    writeFileSync(join(dir, 'bad-password'), 'not-it\n');
    const p = new DevicePool({
      agentName: 'proxy-test',
      credentials: { files: {}, dir },
      hostKeys: { knownHosts, acceptNew: false },
      connectTimeoutMs: 5000,
      idleMs: 60_000,
      log: pino({ level: 'silent' }),
    });
    const { result } = await step(p, 'r-9', spec(['show system uptime'], { credential: 'bad-password' }));
    expect(result.exitCode).toBe(255);
    expect(result.spawnError).toBe(
      `device mx1 (admin@127.0.0.1:${port}) did not accept credential "bad-password" (the password in ${join(dir, 'bad-password')}); check the user and that the password is right on the device`,
    );
  });
});
