/** Fleet: every agent as a fixed-size tile (state, labels, transport, CPU and memory sparklines, last seen), then the devices. */
import { useState } from 'preact/hooks';
import { useApp, useSubscription } from './context.js';
import { ago, bytes } from './format.js';
import { parseLabelFilter } from './labels.js';
import type { AgentInfo, DeviceInfo, Sample } from './messages.js';
import { useNow } from './route.js';
import { Sparkline } from './sparkline.js';
import { agentState } from './states.js';

const SUB = { type: 'subscribe', topic: 'fleet' } as const;

function Labels({ labels }: { labels: Record<string, string> }) {
  const entries = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length) return <span class="muted">no labels</span>;
  return (
    <span class="labels">
      {entries.map(([k, v]) => (
        <span class="chip" key={k} title={`${k}=${v}`}>
          {k}={v}
        </span>
      ))}
    </span>
  );
}

function AgentTile({ agent, samples, now }: { agent: AgentInfo; samples: Sample[]; now: number }) {
  const st = agentState(agent);
  const hb = agent.lastHeartbeat;
  const f = agent.facts;
  const facts = f ? `${f.cpuCount} cpu · ${hb?.memoryTotalBytes ? `${bytes(hb.memoryUsedBytes)} of ` : ''}${bytes(f.memoryBytes)} · ${f.os} ${f.arch}` : '';
  return (
    <article class={`tile agent tone-${st.tone}`} data-testid="agent" data-agent={agent.name} data-state={st.word}>
      <div class="tile-head">
        <span class="dot" />
        <span class="agent-name" title={agent.name}>
          {agent.name}
        </span>
        <span class={`pill tone-${st.tone}`}>{st.word}</span>
      </div>
      <div class="agent-meta">
        <span title="transport">{agent.transport || '–'}</span>
        <span class="num" title="running steps">
          {agent.runningSteps} running
        </span>
        <span class="num" title={agent.lastSeenMs ? new Date(agent.lastSeenMs).toISOString() : ''}>
          seen {ago(agent.lastSeenMs, now)}
        </span>
      </div>
      <Sparkline samples={samples} pick={(s) => s.cpu} label="CPU" />
      <Sparkline samples={samples} pick={(s) => s.mem} label="mem" />
      <div class="agent-facts muted" title={facts}>
        {facts || '–'}
      </div>
      <Labels labels={agent.labels} />
    </article>
  );
}

function Devices({ devices }: { devices: DeviceInfo[] }) {
  return (
    <table class="grid devices">
      <colgroup>
        <col style="width:180px" />
        <col style="width:220px" />
        <col style="width:110px" />
        <col style="width:130px" />
        <col />
        <col style="width:220px" />
      </colgroup>
      <thead>
        <tr>
          <th>device</th>
          <th>address</th>
          <th>user</th>
          <th>network</th>
          <th>labels</th>
          <th>proxies</th>
        </tr>
      </thead>
      <tbody>
        {devices.map((d) => (
          <tr key={d.name} data-testid="device">
            <td class="strong">{d.name}</td>
            <td class="num">
              {d.host}:{d.port}
            </td>
            <td>{d.user}</td>
            <td>{d.network || '–'}</td>
            <td>
              <Labels labels={d.labels} />
            </td>
            <td>{d.proxies.length ? d.proxies.join(', ') : <span class="tone-text-waiting">no proxy agent connected</span>}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function FleetPage() {
  useSubscription(SUB);
  const { state } = useApp();
  const now = useNow();
  const [filter, setFilter] = useState('');
  const match = parseLabelFilter(filter);
  const agents = [...state.agents.values()].sort((a, b) => a.name.localeCompare(b.name));
  const shown = agents.filter((a) => match(a.labels));
  const devices = state.devices.filter((d) => match(d.labels));
  const connected = agents.filter((a) => agentState(a).word === 'connected').length;
  return (
    <section>
      <div class="page-head">
        <h2>Fleet</h2>
        <span class="muted num">
          {agents.length} agents · {connected} connected
        </span>
        <input
          class="filter"
          type="search"
          placeholder="filter by label: role=assets"
          value={filter}
          onInput={(e) => setFilter((e.target as HTMLInputElement).value)}
          aria-label="filter by label"
        />
      </div>
      {!state.fleetLoaded ? (
        <p class="empty">Loading the fleet…</p>
      ) : agents.length === 0 ? (
        <p class="empty">
          No agents yet: start one with <code>drover agent --server HOST:PORT --token ENROLL_TOKEN --name NAME --label role=…</code> (make the
          enrollment token with <code>drover token create --enroll</code>).
        </p>
      ) : shown.length === 0 ? (
        <p class="empty">No agent has labels matching “{filter}”.</p>
      ) : (
        <div class="tiles">
          {shown.map((a) => (
            <AgentTile key={a.name} agent={a} samples={state.history.get(a.name) ?? []} now={now} />
          ))}
        </div>
      )}
      <h3>Devices</h3>
      {devices.length === 0 ? (
        <p class="empty">
          {state.devices.length ? 'No device matches the filter.' : <>No devices: add one with <code>drover device add NAME --host HOST --user USER --credential SECRET</code>.</>}
        </p>
      ) : (
        <Devices devices={devices} />
      )}
    </section>
  );
}
