import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import { fromJSON } from '@grpc/proto-loader';
import type protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { droverV1, LOADER_OPTIONS } from '../../proto/index.js';
import { DESCRIPTOR } from '../../proto/gen/descriptor.js';

/** What @grpc/proto-loader makes of the same descriptor: the reference droverV1() must match. */
function protoLoaderServices(): Map<string, ServiceDefinition> {
  const def = fromJSON(DESCRIPTOR as unknown as protobuf.INamespace, LOADER_OPTIONS);
  const out = new Map<string, ServiceDefinition>();
  for (const [name, value] of Object.entries(def)) {
    if (name.startsWith('drover.v1.') && !('format' in value)) out.set(name.slice('drover.v1.'.length), value as ServiceDefinition);
  }
  return out;
}

const SAMPLES: Record<string, object> = {
  ListAgentsRequest: { labels: { role: 'db' } },
  ListAgentsResponse: {
    agents: [{ name: 'db-1', state: 'AGENT_STATE_CONNECTED', labels: { role: 'db' }, lastSeenMs: 1_796_000_000_000, runningSteps: 2, draining: true, transport: 'grpc' }],
  },
};

describe('proto services', () => {
  const reference = protoLoaderServices();
  const ours = droverV1() as unknown as Record<string, { service: ServiceDefinition }>;

  it('proto services - every service and method matches what proto-loader builds: path, streaming, name, encoding and decoding', () => {
    expect(Object.keys(ours).sort()).toEqual([...reference.keys()].sort());
    for (const [service, ref] of reference) {
      const def = ours[service].service;
      expect(Object.keys(def).sort(), service).toEqual(Object.keys(ref).sort());
      for (const [name, r] of Object.entries(ref) as [string, MethodDefinition<object, object>][]) {
        const m = def[name] as MethodDefinition<object, object>;
        const at = `${service}.${name}`;
        expect({ path: m.path, requestStream: m.requestStream, responseStream: m.responseStream, originalName: m.originalName }, at).toEqual({
          path: r.path,
          requestStream: r.requestStream,
          responseStream: r.responseStream,
          originalName: r.originalName,
        });
        const empty = Buffer.alloc(0);
        expect(m.requestDeserialize(empty), at).toEqual(r.requestDeserialize(empty));
        expect(m.responseDeserialize(empty), at).toEqual(r.responseDeserialize(empty));
        expect(Buffer.from(m.requestSerialize({})), at).toEqual(Buffer.from(r.requestSerialize({})));
      }
    }
  });

  it('proto services - a message with maps, enums, int64 and nested messages encodes and decodes as proto-loader does', () => {
    const ref = reference.get('FleetService')!.ListAgents as MethodDefinition<object, object>;
    const m = ours.FleetService.service.ListAgents as MethodDefinition<object, object>;
    const req = m.requestSerialize(SAMPLES.ListAgentsRequest);
    expect(Buffer.from(req)).toEqual(Buffer.from(ref.requestSerialize(SAMPLES.ListAgentsRequest)));
    const res = ref.responseSerialize(SAMPLES.ListAgentsResponse);
    expect(Buffer.from(m.responseSerialize(SAMPLES.ListAgentsResponse))).toEqual(Buffer.from(res));
    const decoded = m.responseDeserialize(res) as { agents: { lastSeenMs: number; state: string }[] };
    expect(decoded).toEqual(ref.responseDeserialize(res));
    expect(decoded.agents[0]).toMatchObject({ lastSeenMs: 1_796_000_000_000, state: 'AGENT_STATE_CONNECTED' });
  });
});
