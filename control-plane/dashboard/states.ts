/**
 * Every status the page shows maps to one tone, and each tone to one colour
 * in app.css: green succeeded, red failed, blue running, grey pending or
 * skipped, amber waiting or draining.
 */
import type { AgentInfo, RunInfo, StepInfo } from './messages.js';
import { enumWord } from './format.js';

export type Tone = 'succeeded' | 'failed' | 'running' | 'pending' | 'skipped' | 'waiting' | 'cancelled';

export const runWord = (r: RunInfo): string => enumWord(r.status, 'RUN_STATUS_');
export const stepWord = (s: StepInfo): string => enumWord(s.status, 'STEP_STATUS_');

const TONE: Record<string, Tone> = {
  succeeded: 'succeeded',
  failed: 'failed',
  running: 'running',
  pending: 'pending',
  skipped: 'skipped',
  cancelled: 'cancelled',
  unspecified: 'pending',
};

export const runTone = (r: RunInfo): Tone => TONE[runWord(r)] ?? 'pending';

export function stepTone(s: StepInfo): Tone {
  const w = stepWord(s);
  // Amber only for a hold-up; waiting for needs is the ordinary grey pending.
  if (s.blocked && (w === 'pending' || w === 'running')) return 'waiting';
  return TONE[w] ?? 'pending';
}

export const runEnded = (r: RunInfo): boolean => ['succeeded', 'failed', 'cancelled'].includes(runWord(r));

/** An agent's state word and tone: a connected agent that drains shows as draining (amber). */
export function agentState(a: AgentInfo): { word: string; tone: Tone } {
  const w = enumWord(a.state, 'AGENT_STATE_');
  if (w === 'connected') return a.draining ? { word: 'draining', tone: 'waiting' } : { word: 'connected', tone: 'succeeded' };
  if (w === 'disconnected') return { word: 'disconnected', tone: 'waiting' };
  if (w === 'lost') return { word: 'lost', tone: 'failed' };
  return { word: w, tone: 'pending' };
}
