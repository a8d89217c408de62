/**
 * Opening a SignedControl (DESIGN.md §7): the one check of a control
 * message's signature and addressee, shared by the agent (agent/control.ts,
 * which adds the replay counter) and by the conformance kit's scripted agent
 * (sdk/conformance/), so both refuse exactly the same messages.
 */
import { verify, type KeyObject } from 'node:crypto';
import { decodeMessage, type ControlEnvelopeOut } from '../proto/index.js';
import { CONTROL_SIGNATURE_CONTEXT, rootOf } from './control-tree.js';

export interface SignedControlIn {
  payload: Uint8Array;
  signature: Uint8Array;
  proof: Uint8Array[];
  index: number;
}

export type Opened = { ok: true; envelope: ControlEnvelopeOut } | { ok: false; why: string };

/**
 * The last root each key was seen to sign: messages of one batch (several
 * Releases in one turn; in the fleet simulator, one fan-out's thousands of
 * Assigns) cost one signature check, not one each.
 */
const lastVerified = new WeakMap<KeyObject, { signature: string; root: string }>();

function verifyRoot(key: KeyObject, root: Buffer, signature: Uint8Array): boolean {
  const sig = Buffer.from(signature).toString('base64');
  const seen = lastVerified.get(key);
  if (seen && seen.signature === sig && seen.root === root.toString('base64')) return true;
  const good = verify(null, Buffer.concat([CONTROL_SIGNATURE_CONTEXT, root]), key, signature);
  if (good) lastVerified.set(key, { signature: sig, root: root.toString('base64') });
  return good;
}

/**
 * The envelope inside `signed`, once its signature verifies with `key` and it
 * names `agent`; `key` undefined (an --insecure link with no enrollment): it
 * is unwrapped, not verified. Counters are the caller's to check.
 */
export function openSignedControl(signed: SignedControlIn, key: KeyObject | undefined, agent: string): Opened {
  const { payload, signature, proof, index } = signed;
  let good = !key;
  try {
    good ||= verifyRoot(key!, rootOf(payload, proof, index), signature);
  } catch {
    good = false;
  }
  if (!good) return { ok: false, why: "a control message whose signature does not verify with the control plane's key" };
  let envelope: ControlEnvelopeOut;
  try {
    envelope = decodeMessage<ControlEnvelopeOut>('ControlEnvelope', payload);
  } catch {
    return { ok: false, why: 'a signed control message that does not decode' };
  }
  if (envelope.agent !== agent) return { ok: false, why: `a control message for agent "${envelope.agent}"` };
  return { ok: true, envelope };
}
