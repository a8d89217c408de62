/**
 * A real nats-server for tests (scripts/lib/nats-server.ts starts it on an
 * ephemeral 127.0.0.1 port with JetStream in a temp dir); every one started
 * is stopped after the test file.
 */
import { afterAll } from 'vitest';
import { stopAllNatsServers } from '../../scripts/lib/nats-server.js';

export { startNatsServer, type NatsServer, type NatsServerOptions } from '../../scripts/lib/nats-server.js';

afterAll(stopAllNatsServers);
