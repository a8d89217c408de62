/**
 * Figure 7: what signing control messages costs (docs/security.md), with the
 * control plane's and the agent's own code in this process:
 * - the control plane: sealing a 10,000-agent fan-out's Assigns (one
 *   signature over a hash tree, plus encoding the envelopes), against
 *   encoding the same Assigns unsigned, which the transport does anyway;
 * - the agent: checking one signed Assign, against decoding it.
 * The fan-out's own wall time (figure 3, same run) is what the extra is held
 * against: at most 10 % of it.
 */
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { ControlVerifier } from '../../../agent/control.js';
import { ControlSigner } from '../../../control-plane/security/signer.js';
import { decodeMessage, encodeMessage, type ServerMessage, type ServerMessageOut } from '../../../proto/index.js';
import type { BenchContext, FigureResult } from '../context.js';
import { p50, row } from '../report.js';

function assign(i: number): ServerMessage {
  return {
    assign: {
      runId: 'r-bench-0001',
      workflow: 'fan-out',
      runStartedMs: Date.now(),
      paramsJson: '{}',
      steps: [{ id: `hello[agent-${i}]`, kind: 'run', run: 'true', agent: `agent-${i}`, needs: [], env: {}, timeoutMs: 60_000 }],
    },
  };
}

/** `fanOutMs`: figure 3's 10,000-agent NATS fan-out from the same run, when it ran. */
export async function signingFigure(ctx: BenchContext, fanOutMs?: number): Promise<FigureResult> {
  const n = ctx.quick ? 1000 : 10_000;
  ctx.progress(`figure 7: sealing ${n} Assigns, and checking them as agents do`);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const messages = Array.from({ length: n }, (_, i) => assign(i));
  const rounds = 5;
  const plain: number[] = [];
  const sealed: number[] = [];
  let last: ServerMessage[] = [];
  for (let r = 0; r < rounds; r++) {
    let t = performance.now();
    for (const m of messages) encodeMessage('ServerMessage', m);
    plain.push(performance.now() - t);
    const signer = new ControlSigner(privateKey, () => Date.now() + r);
    t = performance.now();
    last = await Promise.all(messages.map((m, i) => signer.seal(`agent-${i}`, m)));
    for (const m of last) encodeMessage('ServerMessage', m);
    sealed.push(performance.now() - t);
  }
  const wires = last.slice(0, 200).map((m) => encodeMessage('ServerMessage', m));
  const decode: number[] = [];
  const check: number[] = [];
  for (const [i, w] of wires.entries()) {
    let t = performance.now();
    const msg = decodeMessage<ServerMessageOut>('ServerMessage', w);
    decode.push(performance.now() - t);
    // A fresh key object per check, as each agent holds its own: no "root already verified" shortcut.
    const own = new ControlVerifier(`agent-${i}`, createPublicKey(publicKey.export({ type: 'spki', format: 'pem' })), undefined);
    t = performance.now();
    own.check(msg);
    check.push(performance.now() - t);
  }
  const extraMs = p50(sealed) - p50(plain);
  const rows = [
    row({
      id: 'signing.fanOutExtraMs',
      figure: '7 signing',
      what: `seal ${n.toLocaleString('en')} Assigns of one fan-out, above encoding them unsigned (p50 of ${rounds})`,
      value: extraMs,
      unit: 'ms',
      baseline: fanOutMs ? { what: `10,000-agent NATS fan-out (figure 3)`, value: fanOutMs, unit: 'ms' } : { what: 'encoding them unsigned', value: p50(plain), unit: 'ms' },
      ...(fanOutMs && !ctx.quick ? { target: { op: '<=' as const, limit: fanOutMs * 0.1, text: '≤ 10 % of the fan-out' } } : {}),
    }),
    row({
      id: 'signing.agentCheckUs',
      figure: '7 signing',
      what: 'agent: check one signed Assign (hash path + Ed25519 verify), p50 of 200',
      value: p50(check) * 1000,
      unit: 'µs',
      baseline: { what: 'decoding it', value: p50(decode) * 1000, unit: 'µs' },
    }),
  ];
  return { rows, details: { messages: n, plainMs: plain, sealedMs: sealed, checkMs: check, decodeMs: decode } };
}
