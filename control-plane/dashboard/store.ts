/**
 * What the page knows, rebuilt from the server's pushes: `apply` is the one
 * place a message changes it. Every change returns new objects for what it
 * touched, so components re-render by identity.
 */
import type { AgentInfo, DeviceInfo, LogLine, Role, RunInfo, Sample, ServerMessage, Stats, StepInfo } from './messages.js';

/** Samples kept per agent for the sparklines (the server sends the last 60). */
export const SPARK_POINTS = 60;
/** Log lines kept for the selected step; older ones scroll away. */
export const MAX_LOG_LINES = 5000;
/** Runs kept in the list (the server's `runs` topic sends the latest 50). */
export const MAX_RUNS = 50;

export interface RunDetail {
  run: RunInfo;
  steps: Map<string, StepInfo>;
}

export interface State {
  role: Role | null;
  name: string;
  /** The token's id and name, for whether it is among an approval step's approvers. */
  tokenId: string;
  tokenName: string;
  agents: Map<string, AgentInfo>;
  devices: DeviceInfo[];
  history: Map<string, Sample[]>;
  fleetLoaded: boolean;
  runs: RunInfo[];
  runsLoaded: boolean;
  detail: RunDetail | null;
  logs: { run: string; step: string; lines: LogLine[] } | null;
  stats: Stats | null;
  /** The latest error the server sent that the page did not act on itself. */
  notice: { code: string; message: string; hint?: string } | null;
}

export const initialState = (): State => ({
  role: null,
  name: '',
  tokenId: '',
  tokenName: '',
  agents: new Map(),
  devices: [],
  history: new Map(),
  fleetLoaded: false,
  runs: [],
  runsLoaded: false,
  detail: null,
  logs: null,
  stats: null,
  notice: null,
});

function upsertRun(runs: RunInfo[], run: RunInfo): RunInfo[] {
  const i = runs.findIndex((r) => r.id === run.id);
  if (i < 0) return [run, ...runs].slice(0, MAX_RUNS);
  const next = runs.slice();
  next[i] = run;
  return next;
}

function withDetailRun(detail: RunDetail | null, run: RunInfo): RunDetail | null {
  if (!detail || detail.run.id !== run.id) return detail;
  return { run: { ...run, steps: [] }, steps: detail.steps };
}

/** The state after one server message. */
export function apply(s: State, m: ServerMessage): State {
  switch (m.type) {
    case 'hello':
      return { ...s, role: m.role, name: m.name, tokenId: m.tokenId ?? '', tokenName: m.tokenName ?? '' };
    case 'error':
      return { ...s, notice: { code: m.code, message: m.message, hint: m.hint } };
    case 'fleet':
      return {
        ...s,
        fleetLoaded: true,
        agents: new Map(m.agents.map((a) => [a.name, a])),
        devices: m.devices,
        history: new Map(Object.entries(m.history).map(([k, v]) => [k, v.slice(-SPARK_POINTS)])),
      };
    case 'agent': {
      const agents = new Map(s.agents).set(m.agent.name, m.agent);
      if (!m.sample) return { ...s, agents };
      const history = new Map(s.history);
      history.set(m.agent.name, [...(history.get(m.agent.name) ?? []), m.sample].slice(-SPARK_POINTS));
      return { ...s, agents, history };
    }
    case 'runs':
      return { ...s, runs: m.runs.slice(0, MAX_RUNS), runsLoaded: true };
    case 'runSummary':
      return { ...s, runs: upsertRun(s.runs, m.run), detail: withDetailRun(s.detail, m.run) };
    case 'cancelled':
    case 'decided':
      return { ...s, runs: upsertRun(s.runs, m.run), detail: withDetailRun(s.detail, m.run) };
    case 'runDetail': {
      const steps = m.run.steps.length > 0 || !s.detail || s.detail.run.id !== m.run.id ? new Map(m.run.steps.map((st) => [st.id, st])) : s.detail.steps;
      return { ...s, detail: { run: { ...m.run, steps: [] }, steps } };
    }
    case 'step': {
      if (!s.detail || s.detail.run.id !== m.runId) return s;
      const steps = new Map(s.detail.steps).set(m.step.id, m.step);
      return { ...s, detail: { run: s.detail.run, steps } };
    }
    case 'logs': {
      const same = s.logs && s.logs.run === m.run && s.logs.step === m.step;
      const lines = same ? [...s.logs!.lines, ...m.lines] : m.lines;
      return { ...s, logs: { run: m.run, step: m.step, lines: lines.length > MAX_LOG_LINES ? lines.slice(-MAX_LOG_LINES) : lines } };
    }
    case 'stats':
      return { ...s, stats: m.stats };
    default:
      return s;
  }
}
