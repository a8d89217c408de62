/**
 * Enrolls simulated agents the way real ones enroll (agent/identity.ts): a
 * key and CSR each, an Enroll call with an enrollment token, and the
 * client certificate back; so the simulator's links are real mTLS links.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import pLimit from 'p-limit';
import { discoverCa, newCertificateRequest, requestEnrollment, tokenCaHash } from '../../agent/identity.js';
import type { LinkTls } from '../../agent/link/grpc-link.js';

export interface SimIdentities {
  tls: Map<string, LinkTls>;
  controlKey: KeyObject;
}

/** Enrolls `names` at `address` with one multi-use enrollment token, `parallel` at a time. */
export async function enrollSimAgents(address: string, token: string, names: string[], parallel = 16): Promise<SimIdentities> {
  const caPem = await discoverCa(address, tokenCaHash(token));
  const limit = pLimit(parallel);
  const tls = new Map<string, LinkTls>();
  let controlKeyPem = '';
  await Promise.all(
    names.map((name) =>
      limit(async () => {
        const { keyPem, csrPem } = await newCertificateRequest(name);
        const res = await requestEnrollment(address, caPem, { token, name, csrPem });
        if (res.status !== 'ENROLL_STATUS_ISSUED') throw new Error(`simulated agent ${name} was not enrolled: ${res.message}`);
        controlKeyPem = res.controlKeyPem;
        tls.set(name, { caPem, certPem: res.certificatePem, keyPem });
      }),
    ),
  );
  return { tls, controlKey: createPublicKey(controlKeyPem) };
}
