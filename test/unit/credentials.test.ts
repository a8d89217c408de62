import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { newCertificateRequest, tokenCaHash, IdentityError } from '../../agent/identity.js';
import { Credentials, EnrollError } from '../../control-plane/security/credentials.js';
import { CertificateError, certificateHash, Pki } from '../../control-plane/security/pki.js';
import { Tokens } from '../../control-plane/security/tokens.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';

async function setup(opts: { approve?: boolean; ttlMs?: number } = {}) {
  let t = Date.now();
  const now = () => t;
  const dataDir = mkdtempSync(join(tmpdir(), 'drover-pki-'));
  const pki = await Pki.open({ dataDir, hosts: ['cp.example', '10.1.2.3'], now });
  const store = new MemoryStore();
  const tokens = new Tokens(store, pki.caHash, now);
  const creds = new Credentials({ store, pki, tokens, now, certTtlMs: opts.ttlMs ?? 30 * 86_400_000, approve: opts.approve ?? false });
  return { dataDir, pki, store, tokens, creds, advance: (ms: number) => (t += ms) };
}

const der = (pem: string) => new X509Certificate(pem).raw;

describe('credentials', () => {
  it('pki - the first start makes a CA, a server certificate for the served names and a signing key, all 0600; a second start keeps them', async () => {
    const { dataDir, pki } = await setup();
    for (const f of ['ca.pem', 'ca.key', 'server.pem', 'server.key', 'control-signing.key']) expect(statSync(join(dataDir, f)).mode & 0o777, f).toBe(0o600);
    const san = new X509Certificate(pki.serverCertPem).subjectAltName!;
    for (const name of ['DNS:localhost', 'DNS:cp.example', 'IP Address:127.0.0.1', 'IP Address:10.1.2.3']) expect(san).toContain(name);
    const again = await Pki.open({ dataDir, hosts: ['cp.example'], now: Date.now });
    expect(again.caPem).toBe(pki.caPem);
    expect(again.serverCertPem).toBe(pki.serverCertPem);
    expect(again.controlPublicKeyPem).toBe(pki.controlPublicKeyPem);
    const wider = await Pki.open({ dataDir, hosts: ['other.example'], now: Date.now });
    expect(wider.caPem).toBe(pki.caPem);
    expect(new X509Certificate(wider.serverCertPem).subjectAltName).toContain('DNS:other.example');
  });

  it('enroll - a good token gives a client certificate naming the agent; the same key again gets the same certificate; the token carries the CA hash', async () => {
    const { pki, tokens, creds } = await setup();
    const { token } = tokens.create({ kind: 'enroll', uses: 1 });
    expect(tokenCaHash(token)).toBe(certificateHash(pki.caPem));
    const { csrPem } = await newCertificateRequest('web-1');
    const res = await creds.enroll({ token, name: 'web-1', csrPem });
    expect(res.status).toBe('issued');
    const certPem = (res as { certPem: string }).certPem;
    const cert = pki.verifyAgentCertificate(der(certPem));
    expect(cert.name).toBe('web-1');
    expect(creds.authenticate(der(certPem)).serial).toBe(cert.serial);
    // A retry of the same request (lost answer) is not a second use.
    expect(((await creds.enroll({ token, name: 'web-1', csrPem })) as { certPem: string }).certPem).toBe(certPem);
  });

  it('enroll - refused: a used-up or wrong token, a name outside the pattern, a name already enrolled, a CSR for another name', async () => {
    const { tokens, creds } = await setup();
    const one = tokens.create({ kind: 'enroll', uses: 1 }).token;
    await creds.enroll({ token: one, name: 'a-1', csrPem: (await newCertificateRequest('a-1')).csrPem });
    const refused = async (req: { token: string; name: string; csrPem: string }, code: string, msg: RegExp) => {
      const err = await creds.enroll(req).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EnrollError);
      expect((err as EnrollError).code).toBe(code);
      expect((err as EnrollError).message).toMatch(msg);
    };
    await refused({ token: one, name: 'a-2', csrPem: (await newCertificateRequest('a-2')).csrPem }, 'BAD_TOKEN', /used up/);
    await refused({ token: one.replace(/.$/, 'x'), name: 'a-2', csrPem: (await newCertificateRequest('a-2')).csrPem }, 'BAD_TOKEN', /not known/);
    const web = tokens.create({ kind: 'enroll', namePattern: 'web-*' }).token;
    await refused({ token: web, name: 'db-1', csrPem: (await newCertificateRequest('db-1')).csrPem }, 'BAD_TOKEN', /only for agents named like "web-\*"/);
    const any = tokens.create({ kind: 'enroll' }).token;
    await refused({ token: any, name: 'a-1', csrPem: (await newCertificateRequest('a-1')).csrPem }, 'NAME_TAKEN', /already enrolled .* drover agent revoke a-1/);
    await refused({ token: any, name: 'b-1', csrPem: (await newCertificateRequest('b-2')).csrPem }, 'BAD_REQUEST', /names "CN=b-2", not CN=b-1/);
  });

  it('enroll - with approval the request waits until approved, then the same request gets the certificate', async () => {
    const { tokens, creds } = await setup({ approve: true });
    const token = tokens.create({ kind: 'enroll', uses: 1 }).token;
    const { csrPem } = await newCertificateRequest('edge-1');
    expect((await creds.enroll({ token, name: 'edge-1', csrPem })).status).toBe('pending');
    expect((await creds.enroll({ token, name: 'edge-1', csrPem })).status).toBe('pending');
    expect(creds.list().map((c) => c.shownState)).toEqual(['pending']);
    await creds.approve('edge-1');
    expect((await creds.enroll({ token, name: 'edge-1', csrPem })).status).toBe('issued');
  });

  it('revoke - a revoked certificate is refused with when; an expired one names the fix; the name can enroll anew', async () => {
    const { tokens, creds, advance } = await setup({ ttlMs: 60_000 });
    const token = tokens.create({ kind: 'enroll' }).token;
    const res = (await creds.enroll({ token, name: 'w', csrPem: (await newCertificateRequest('w')).csrPem })) as { certPem: string };
    creds.revoke('w');
    expect(() => creds.authenticate(der(res.certPem))).toThrow(CertificateError);
    expect(() => creds.authenticate(der(res.certPem))).toThrow(/was revoked at/);
    const again = (await creds.enroll({ token, name: 'w', csrPem: (await newCertificateRequest('w')).csrPem })) as { certPem: string };
    advance(61_000);
    expect(() => creds.authenticate(der(again.certPem))).toThrow(/expired at .* not renewed in time/);
  });

  it('identity - an API token or junk is not taken for an enrollment token', () => {
    expect(() => tokenCaHash('drover-api.abc.def')).toThrow(IdentityError);
    expect(() => tokenCaHash('drover-api.abc.def')).toThrow(/that is an API token/);
    expect(() => tokenCaHash('hello')).toThrow(/is not an enrollment token/);
  });
});
