/**
 * The least any control plane must do for agents over NATS, as a process of
 * its own (started by the idle-fleet figure with `node --import tsx`): a
 * nats.js subscriber on the agents' subjects that reads each message's
 * session headers and decodes its protobuf, and nothing else. Its CPU over
 * the idle window is the floor the control plane's CPU is compared with.
 */
import { connect } from '@nats-io/transport-node';
import { decodeMessage } from '../../proto/index.js';
import { agentOfUpSubject, NATS_AGENT_WILDCARD, NATS_HEADER } from '../../proto/nats.js';

const nc = await connect({ servers: process.argv[2], name: 'drover-bench-floor', noEcho: true });
let received = 0;
nc.subscribe(NATS_AGENT_WILDCARD, {
  callback: (err, msg) => {
    if (err || !agentOfUpSubject(msg.subject)) return;
    received++;
    msg.headers?.get(NATS_HEADER.session);
    msg.headers?.get(NATS_HEADER.seq);
    decodeMessage('AgentMessage', msg.data);
  },
});
await nc.flush();
process.on('message', () => process.send!({ received }));
process.on('disconnect', () => process.exit(0));
process.send!({ ready: true });
