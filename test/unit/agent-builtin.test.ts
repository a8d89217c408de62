import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../agent/config.js';
import { ConfigError } from '../../common/errors.js';
import { FileRootError, MAX_HTTP_BODY_BYTES, resolveInRoots, runFile, runHttp, type FileSpec, type HttpSpec } from '../../agent/executor/builtin.js';
import { EgressDeniedError, EgressPolicy, EgressRuleError, normalizeAddress } from '../../agent/executor/egress.js';

const logged: string[] = [];
const ctx = { timeoutMs: 10_000, log: (_stream: 'stdout' | 'stderr', text: string) => void logged.push(text) };

interface TestServer {
  url: string;
  port: number;
  connections: number;
  requests: { method: string; url: string; body: string; headers: IncomingMessage['headers'] }[];
  server: Server;
}

const servers: Server[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => (s.closeAllConnections(), s.close(r)))));
});

/** A real HTTP server on an ephemeral port that counts the connections made to it. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse, self: TestServer) => void, host = '127.0.0.1'): Promise<TestServer> {
  const self = { connections: 0, requests: [] } as unknown as TestServer;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      self.requests.push({ method: req.method!, url: req.url!, body, headers: req.headers });
      handler(req, res, self);
    });
  });
  server.on('connection', () => self.connections++);
  await new Promise<void>((r) => server.listen(0, host, r));
  servers.push(server);
  self.server = server;
  self.port = (server.address() as AddressInfo).port;
  self.url = `http://${host}:${self.port}`;
  return self;
}

const ok = (_req: IncomingMessage, res: ServerResponse) => res.end('hello');

async function http(spec: Partial<HttpSpec> & { url: string }, rules: { allow?: string[]; deny?: string[] } = {}) {
  const full: HttpSpec = { method: 'GET', headers: {}, body: '', expectStatus: [], ...spec };
  return runHttp(full, { egress: new EgressPolicy(rules) }, ctx).result;
}

describe('agent http step - egress policy', () => {
  it('agent http step - a --http-deny CIDR refuses before any byte reaches the server', async () => {
    const s = await serve(ok);
    const r = await http({ url: `${s.url}/x` }, { deny: ['127.0.0.1/32'] });
    expect(r.exitCode).toBe(1);
    expect(r.spawnError).toBe(
      "http step refused to connect to 127.0.0.1: the agent's --http-deny 127.0.0.1/32 denies it, and deny wins over --http-allow; remove that rule from the agent's --http-deny (httpDeny in its config file) to allow it",
    );
    expect(s.connections).toBe(0);
  });

  it('agent http step - a host name is checked on the address it resolves to', async () => {
    const s = await serve(ok);
    const r = await http({ url: `http://localhost:${s.port}/` }, { deny: ['127.0.0.0/8'] });
    expect(r.spawnError).toMatch(/^http step refused to connect to localhost \(127\.0\.0\.1\): the agent's --http-deny 127\.0\.0\.0\/8 denies it/);
    expect(s.connections).toBe(0);
  });

  it('agent http step - deny wins over allow', async () => {
    const s = await serve(ok);
    const r = await http({ url: s.url }, { allow: ['127.0.0.0/8'], deny: ['127.0.0.1'] });
    expect(r.spawnError).toMatch(/--http-deny 127\.0\.0\.1 denies it, and deny wins over --http-allow/);
    expect(s.connections).toBe(0);
  });

  it('agent http step - with --http-allow localhost, 127.0.0.1 is refused and localhost allowed', async () => {
    const s = await serve(ok);
    const refused = await http({ url: s.url }, { allow: ['localhost'] });
    expect(refused.spawnError).toBe(
      "http step refused to connect to 127.0.0.1: it matches none of the agent's --http-allow rules (localhost); start the agent with --http-allow 127.0.0.1 to allow it",
    );
    expect(s.connections).toBe(0);
    const allowed = await http({ url: `http://localhost:${s.port}/` }, { allow: ['localhost'] });
    expect(allowed.exitCode).toBe(0);
    expect(allowed.outputs).toMatchObject({ status: '200', body: 'hello' });
    expect(s.connections).toBe(1);
  });

  it('agent http step - a wildcard host pattern matches names below it, not the name itself', () => {
    const p = new EgressPolicy({ allow: ['*.example.com'] });
    expect(p.refusal('api.example.com', '192.0.2.1')).toBeUndefined();
    expect(p.refusal('a.b.example.com', '192.0.2.1')).toBeUndefined();
    expect(p.refusal('example.com', '192.0.2.1')?.message).toMatch(/matches none of the agent's --http-allow rules \(\*\.example\.com\)/);
    expect(p.refusal('evilexample.com', '192.0.2.1')).toBeInstanceOf(EgressDeniedError);
  });

  it('agent http step - the metadata address is refused by default, even behind an allowed host pattern', () => {
    const p = new EgressPolicy({ allow: ['*.example.com'] });
    const e = p.refusal('meta.example.com', '169.254.169.254');
    expect(e).toBeInstanceOf(EgressDeniedError);
    expect(e?.message).toBe(
      'http step refused to connect to meta.example.com (169.254.169.254): 169.254.0.0/16 (link-local and cloud metadata addresses) is denied by default; start the agent with --http-allow 169.254.169.254 to allow it',
    );
    expect(new EgressPolicy({ allow: ['169.254.169.254'] }).refusal('169.254.169.254', '169.254.169.254')).toBeUndefined();
    expect(new EgressPolicy().refusal('x', 'fd00:ec2::254')?.message).toMatch(/fd00:ec2::254 \(link-local and cloud metadata addresses\) is denied by default/);
    expect(new EgressPolicy().refusal('x', 'fe80::1')?.message).toMatch(/fe80::\/10/);
    expect(new EgressPolicy().refusal('x', '10.1.2.3')).toBeUndefined();
  });

  it('agent http step - the IPv4-mapped IPv6 metadata literal is refused', async () => {
    const r = await http({ url: 'http://[::ffff:169.254.169.254]/latest/meta-data/' });
    expect(r.spawnError).toBe(
      'http step refused to connect to 169.254.169.254: 169.254.0.0/16 (link-local and cloud metadata addresses) is denied by default; start the agent with --http-allow 169.254.169.254 to allow it',
    );
    expect(normalizeAddress('::FFFF:A9FE:A9FE')).toBe('169.254.169.254');
    expect(normalizeAddress('[0:0:0:0:0:ffff:169.254.169.254]')).toBe('169.254.169.254');
    expect(normalizeAddress('FD00:EC2:0:0::254')).toBe('fd00:ec2::254');
  });

  it('agent http step - a mapped IPv6 address matches an IPv4 --http-deny rule', () => {
    const p = new EgressPolicy({ deny: ['10.0.0.0/8'] });
    expect(p.refusal('db.internal', '::ffff:10.1.2.3')?.message).toMatch(/^http step refused to connect to db\.internal \(10\.1\.2\.3\): the agent's --http-deny 10\.0\.0\.0\/8/);
  });

  it('agent http step - a rule that is no CIDR, IP or host pattern is refused', () => {
    expect(() => new EgressPolicy({ deny: ['10.0.0.0/33'] })).toThrow(EgressRuleError);
    expect(() => new EgressPolicy({ deny: ['10.0.0.0/33'] })).toThrow('--http-deny "10.0.0.0/33": the prefix length must be a whole number from 0 to 32');
    expect(() => new EgressPolicy({ allow: ['*'] })).toThrow(/--http-allow "\*" is not a CIDR .* to match every address use 0\.0\.0\.0\/0 and ::\/0/);
    expect(() => new EgressPolicy({ allow: ['http://x.example'] })).toThrow(EgressRuleError);
  });
});

describe('agent http step - redirects', () => {
  it('agent http step - a redirect to the metadata address is refused without connecting', async () => {
    const s = await serve((_req, res) => res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end());
    const t0 = Date.now();
    const r = await http({ url: `${s.url}/start` });
    expect(r.spawnError).toBe(
      'http step refused to connect to 169.254.169.254: 169.254.0.0/16 (link-local and cloud metadata addresses) is denied by default; start the agent with --http-allow 169.254.169.254 to allow it',
    );
    // Refused at once, not after a connect timeout.
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(s.connections).toBe(1);
  });

  it('agent http step - a redirect to a server denied by CIDR is refused', async () => {
    const denied = await serve(ok, '127.0.0.2');
    const s = await serve((_req, res) => res.writeHead(307, { location: `${denied.url}/inside` }).end());
    const r = await http({ url: s.url }, { deny: ['127.0.0.2/32'] });
    expect(r.spawnError).toMatch(/^http step refused to connect to 127\.0\.0\.2: the agent's --http-deny 127\.0\.0\.2\/32 denies it/);
    expect(s.connections).toBe(1);
    expect(denied.connections).toBe(0);
  });

  const hops = (_req: IncomingMessage, res: ServerResponse) => {
    const n = Number(/^\/hop\/(\d+)$/.exec(_req.url!)?.[1] ?? 0);
    if (n > 0) res.writeHead(302, { location: `/hop/${n - 1}` }).end();
    else res.end('arrived');
  };

  it('agent http step - 5 redirects are followed', async () => {
    const s = await serve(hops);
    logged.length = 0;
    const r = await http({ url: `${s.url}/hop/5` });
    expect(r.exitCode).toBe(0);
    expect(r.outputs).toMatchObject({ status: '200', body: 'arrived' });
    expect(s.requests.map((q) => q.url)).toEqual(['/hop/5', '/hop/4', '/hop/3', '/hop/2', '/hop/1', '/hop/0']);
    expect(logged[0]).toBe(`GET ${s.url}/hop/5 -> 302 Found, redirected to ${s.url}/hop/4\n`);
    expect(logged.at(-1)).toMatch(new RegExp(`^GET ${s.url}/hop/0 -> 200 OK \\(\\d+ ms, 7 bytes\\)\\n$`));
  });

  it('agent http step - a 6th redirect fails the step', async () => {
    const s = await serve(hops);
    const r = await http({ url: `${s.url}/hop/6` });
    expect(r.exitCode).toBe(1);
    expect(r.spawnError).toBe(`too many redirects (more than 5); the last was ${s.url}/hop/1 -> /hop/0`);
    expect(s.requests).toHaveLength(6);
  });

  it('agent http step - 303 turns a POST into a GET; 307 keeps method and body', async () => {
    const s = await serve((req, res) => {
      if (req.url === '/303') res.writeHead(303, { location: '/seen' }).end();
      else if (req.url === '/307') res.writeHead(307, { location: '/kept' }).end();
      else res.end(req.method);
    });
    const a = await http({ method: 'POST', url: `${s.url}/303`, body: 'data' });
    expect(a.outputs?.body).toBe('GET');
    expect(s.requests.at(-1)).toMatchObject({ method: 'GET', url: '/seen', body: '' });
    const b = await http({ method: 'POST', url: `${s.url}/307`, body: 'data' });
    expect(b.outputs?.body).toBe('POST');
    expect(s.requests.at(-1)).toMatchObject({ method: 'POST', url: '/kept', body: 'data' });
  });

  it('agent http step - no header the step set, nor its body, is sent to another origin', async () => {
    const other = await serve(ok);
    const s = await serve((_req, res) => res.writeHead(307, { location: `http://localhost:${other.port}/` }).end());
    const r = await http({ method: 'POST', url: s.url, headers: { Authorization: 'Bearer secret', 'x-api-key': 'k3y' }, body: 'payload' });
    expect(r.exitCode).toBe(0);
    expect(s.requests[0].headers.authorization).toBe('Bearer secret');
    expect(other.requests[0].headers.authorization).toBeUndefined();
    expect(other.requests[0].headers['x-api-key']).toBeUndefined();
    expect(other.requests[0]).toMatchObject({ method: 'GET', body: '' });
  });
});

describe('agent http step - responses', () => {
  it('agent http step - a 10 MB body is truncated to 64 KiB and not read to its end', async () => {
    let sent = 0;
    let finished = false;
    const s = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(10 * 1024 * 1024) });
      const chunk = Buffer.alloc(64 * 1024, 'a');
      const more = () => {
        while (sent < 10 * 1024 * 1024 && !res.destroyed) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        if (!res.destroyed) res.end(() => (finished = true));
      };
      res.on('error', () => {});
      more();
    });
    const r = await http({ url: s.url });
    expect(r.exitCode).toBe(0);
    expect(r.outputs?.body).toHaveLength(MAX_HTTP_BODY_BYTES);
    expect(r.outputs?.body_truncated).toBe('true');
    expect(logged.at(-1)).toMatch(/-> 200 OK \(\d+ ms, more than 65536 bytes, body truncated\)\n$/);
    await new Promise((res) => setTimeout(res, 200));
    expect(finished).toBe(false);
  });

  it('agent http step - status, headers and the expected-status failure are kept', async () => {
    const s = await serve((_req, res) => res.writeHead(404, { 'x-one': 'a', 'set-cookie': ['a=1', 'b=2'] }).end('nope'));
    const r = await http({ url: s.url });
    expect(r.spawnError).toBe('expected status 2xx, got 404 Not Found');
    expect(r.outputs).toMatchObject({ status: '404', body: 'nope' });
    expect(JSON.parse(r.outputs!.headers)).toMatchObject({ 'x-one': 'a', 'set-cookie': 'a=1, b=2' });
    expect(r.outputs?.body_truncated).toBeUndefined();
  });

  it('agent http step - the step timeout stops a request that hangs', async () => {
    const s = await serve(() => {});
    const r = await runHttp({ method: 'GET', url: s.url, headers: {}, body: '', expectStatus: [] }, {}, { ...ctx, timeoutMs: 200 }).result;
    expect(r.timedOut).toBe(true);
    expect(r.exitCode).toBe(1);
  });

  it('agent http step - a URL that is not http or https fails the step', async () => {
    expect((await http({ url: 'ftp://example.com/' })).spawnError).toBe('only http and https URLs are supported, got ftp:');
    expect((await http({ url: 'not a url' })).spawnError).toBe('"not a url" is not a URL');
  });
});

describe('agent file step', () => {
  const dirs: string[] = [];
  const root = () => {
    const d = mkdtempSync(join(tmpdir(), 'drover-builtin-'));
    dirs.push(d);
    return d;
  };
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  let savedUmask: number | undefined;
  afterEach(() => {
    if (savedUmask !== undefined) process.umask(savedUmask);
    savedUmask = undefined;
  });

  const write = (spec: Partial<FileSpec> & { path: string }, roots: string[], allowSpecialModes = false) =>
    runFile({ content: 'x\n', mode: '', owner: '', ...spec }, { roots, allowSpecialModes }, ctx).result;
  const leftovers = (dir: string) => readdirSync(dir).filter((f) => f.includes('.drover-tmp-'));

  it('agent file step - a setuid mode is refused without --file-allow-special-modes', async () => {
    const d = root();
    const r = await write({ path: 'tool', mode: '4777' }, [d]);
    expect(r.exitCode).toBe(1);
    expect(r.spawnError).toBe(
      'mode 4777 sets the setuid bit; file steps may not write setuid, setgid or sticky files unless the agent allows it: use a mode below 1000 (for example 0777), or start the agent with --file-allow-special-modes to allow it',
    );
    expect(readdirSync(d)).toEqual([]);
    expect((await write({ path: 'shared', mode: '3775' }, [d])).spawnError).toMatch(/^mode 3775 sets the setgid and sticky bits;/);
  });

  it('agent file step - a setuid mode is written with --file-allow-special-modes', async () => {
    const d = root();
    const r = await write({ path: 'tool', mode: '4755' }, [d], true);
    expect(r.exitCode).toBe(0);
    expect(statSync(join(d, 'tool')).mode & 0o7777).toBe(0o4755);
  });

  it('agent file step - the mode is exactly the one asked for, whatever the umask', async () => {
    const d = root();
    savedUmask = process.umask(0o077);
    const r = await write({ path: 'open.txt', mode: '0666' }, [d]);
    expect(r.exitCode).toBe(0);
    expect(statSync(join(d, 'open.txt')).mode & 0o7777).toBe(0o666);
    expect(logged.at(-1)).toBe(`wrote 2 bytes to ${join(d, 'open.txt')} (mode 0666)\n`);
    await write({ path: 'default.txt' }, [d]);
    expect(statSync(join(d, 'default.txt')).mode & 0o7777).toBe(0o644);
  });

  it('agent file step - a mode that is not octal of at most 4 digits is refused', async () => {
    const d = root();
    for (const mode of ['0o644', '9', '12345', 'rw-r--r--']) {
      expect((await write({ path: 'f', mode }, [d])).spawnError).toBe(`mode "${mode}" is not an octal file mode of at most 4 digits (for example "0644" or "0755")`);
    }
    expect((await write({ path: 'f', mode: '0640' }, [d])).exitCode).toBe(0);
  });

  it('agent file step - an unknown owner fails the step and leaves no temp file', async () => {
    const d = root();
    const r = await write({ path: 'owned.txt', owner: 'drover-no-such-user' }, [d]);
    expect(r.exitCode).toBe(1);
    expect(r.spawnError).toMatch(/^owner "drover-no-such-user": no user "drover-no-such-user" on this host \(`id -u drover-no-such-user`: .*\); name an existing user and group, or leave owner out$/);
    expect(readdirSync(d)).toEqual([]);
    const g = await write({ path: 'owned.txt', owner: 'root:drover-no-such-group' }, [d]);
    expect(g.spawnError).toMatch(/^owner "root:drover-no-such-group": no group "drover-no-such-group" on this host/);
    expect(readdirSync(d)).toEqual([]);
  });

  it('agent file step - a failure after the temp file is written removes it', async () => {
    const d = root();
    mkdirSync(join(d, 'taken'));
    writeFileSync(join(d, 'taken', 'keep'), '');
    const r = await write({ path: 'taken' }, [d]);
    expect(r.exitCode).toBe(1);
    expect(r.spawnError).toMatch(/^E(ISDIR|NOTEMPTY|EXIST)/);
    expect(leftovers(d)).toEqual([]);
  });

  it('agent file step - names that start with ".." stay inside the root', async () => {
    const d = root();
    const real = realpathSync(d);
    expect(resolveInRoots('..hidden', [d])).toBe(join(real, '..hidden'));
    expect(resolveInRoots('a/..b', [d])).toBe(join(real, 'a', '..b'));
    expect(resolveInRoots(`${d}/..x/y`, [d])).toBe(join(real, '..x', 'y'));
    const r = await write({ path: '..hidden', content: 'secret' }, [d]);
    expect(r.exitCode).toBe(0);
    expect(readFileSync(join(d, '..hidden'), 'utf8')).toBe('secret');
  });

  it('agent file step - "../x", ".." and a symlink out of the root are refused', async () => {
    const d = root();
    const outside = root();
    symlinkSync(outside, join(d, 'link'));
    for (const path of ['../x', '..', 'a/../../x', 'link/x']) {
      expect(() => resolveInRoots(path, [d])).toThrow(FileRootError);
      expect(() => resolveInRoots(path, [d])).toThrow(`"${path}" is outside the agent's allowed roots (${d}); write inside one of them, or add a root with --file-root`);
    }
    expect((await write({ path: '../x' }, [d])).spawnError).toMatch(/is outside the agent's allowed roots/);
    expect(readdirSync(outside)).toEqual([]);
  });
});

describe('agent config - builtin step options', () => {
  it('agent config - --http-allow, --http-deny and --file-allow-special-modes are read', () => {
    const cfg = resolveConfig({ name: 'a1', httpAllow: ['10.0.0.0/8'], httpDeny: ['10.9.0.0/16'], fileAllowSpecialModes: true }, {});
    expect(cfg).toMatchObject({ httpAllow: ['10.0.0.0/8'], httpDeny: ['10.9.0.0/16'], fileAllowSpecialModes: true });
    expect(cfg.egress.refusal('x', '10.9.1.1')).toBeInstanceOf(EgressDeniedError);
    expect(cfg.egress.refusal('x', '10.1.1.1')).toBeUndefined();
    expect(resolveConfig({ name: 'a1' }, {})).toMatchObject({ httpAllow: [], httpDeny: [], fileAllowSpecialModes: false });
  });

  it('agent config - config file keys, and flags over them', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'drover-cfg-')), 'agent.yaml');
    writeFileSync(file, 'name: a2\nhttpAllow: ["*.example.com", 192.0.2.0/24]\nhttpDeny: 192.0.2.9\nfileAllowSpecialModes: true\n');
    expect(resolveConfig({ config: file }, {})).toMatchObject({ httpAllow: ['*.example.com', '192.0.2.0/24'], httpDeny: ['192.0.2.9'], fileAllowSpecialModes: true });
    expect(resolveConfig({ config: file, httpAllow: ['api.internal'] }, {}).httpAllow).toEqual(['api.internal']);
  });

  it('agent config - a bad rule is a config error naming the flag', () => {
    expect(() => resolveConfig({ name: 'a3', httpDeny: ['10.0.0.0/40'] }, {})).toThrow(ConfigError);
    expect(() => resolveConfig({ name: 'a3', httpDeny: ['10.0.0.0/40'] }, {})).toThrow(/^--http-deny "10\.0\.0\.0\/40": the prefix length/);
  });
});
