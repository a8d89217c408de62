/**
 * The hash tree that lets one Ed25519 signature cover every control message
 * sealed in one event-loop turn (proto SignedControl). Both ends use it: the
 * control plane to build the tree and the paths, the agent to fold a path
 * back to the signed root. Leaves and nodes are hashed with different
 * prefixes, so a node can never pass for a leaf.
 */
import { createHash } from 'node:crypto';

/** What the signature covers: this prefix, then the root. */
export const CONTROL_SIGNATURE_CONTEXT = Buffer.from('drover.v1.control:');

const sha = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const LEAF = Buffer.from([0]);
const NODE = Buffer.from([1]);

export function leafHash(payload: Uint8Array): Buffer {
  return sha(LEAF, payload);
}

/** The root of `payloads` and, per payload, the sibling hashes from its leaf up. */
export function buildTree(payloads: readonly Uint8Array[]): { root: Buffer; proofs: Buffer[][] } {
  let level = payloads.map(leafHash);
  const proofs: Buffer[][] = payloads.map(() => []);
  // Where each leaf's ancestor sits in the current level.
  const at = payloads.map((_, i) => i);
  while (level.length > 1) {
    const next: Buffer[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(sha(NODE, level[i], level[i + 1] ?? level[i]));
    for (let leaf = 0; leaf < at.length; leaf++) {
      const pos = at[leaf];
      proofs[leaf].push(pos % 2 === 0 ? (level[pos + 1] ?? level[pos]) : level[pos - 1]);
      at[leaf] = pos >> 1;
    }
    level = next;
  }
  return { root: level[0], proofs };
}

/** The root a payload's path leads to. */
export function rootOf(payload: Uint8Array, proof: readonly Uint8Array[], index: number): Buffer {
  let h = leafHash(payload);
  for (let k = 0; k < proof.length; k++) {
    h = (index >>> k) & 1 ? sha(NODE, proof[k], h) : sha(NODE, h, proof[k]);
  }
  return h;
}
