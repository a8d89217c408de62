/**
 * Log chunks from agents, at the session layer: recognised when stored
 * before (by agent and message seq), decoded and cut into lines once.
 *
 * A chunk whose seq is at or below the highest seq that the run's log file
 * holds from that agent was stored before a crash that lost the agent's
 * applied seq (log files are synced apart from the state file): it is a
 * duplicate, like a seq at or below the applied one (agent-sessions.ts).
 *
 * Agents cut chunks at line ends; a line longer than a chunk is cut
 * anywhere, so a decoder per attempt and stream keeps a multi-byte
 * character split across two chunks whole.
 */
import type { LogChunkOut } from '../proto/index.js';
import type { LogLines } from './scheduler/run-machine.js';
import type { Store } from './store/store.js';
import { fromLogStream } from './wire.js';

/** Ended runs whose log seqs stay cached for late lines of superseded attempts (see remember). */
const LATE_LOG_RUNS = 32;

export class LogIntake {
  private decoders = new Map<string, TextDecoder>();
  /** Per run and agent, the highest log message seq stored. */
  private seqs = new Map<string, Map<string, number>>();
  /** Ended runs that received late log lines, oldest first. */
  private lateRuns: string[] = [];

  constructor(
    private readonly store: Store,
    /** Whether a run is pending or running (its caches go when it ends: see forget). */
    private readonly isActive: (runId: string) => boolean,
  ) {}

  /** Whether the run's log already holds this chunk (seq 0: unknown, never a duplicate); records the seq otherwise. */
  duplicate(agent: string, chunk: LogChunkOut, seq: number): boolean {
    if (!seq) return false;
    let stored = this.seqs.get(chunk.runId);
    if (!stored) {
      this.seqs.set(chunk.runId, (stored = this.store.storedLogSeqs(chunk.runId)));
      if (!this.isActive(chunk.runId)) this.remember(chunk.runId);
    }
    if (seq <= (stored.get(agent) ?? 0)) return true;
    stored.set(agent, seq);
    return false;
  }

  /** The chunk's text as lines (each with its "\n", but a last unterminated one). */
  lines(chunk: LogChunkOut, seq: number): LogLines {
    const stream = fromLogStream(chunk.stream);
    const key = `${chunk.attemptId}:${stream}`;
    let dec = this.decoders.get(key);
    // Decoders are kept for runs that are active or remembered only, so chunks naming unknown runs leave nothing behind.
    if (!dec && (this.isActive(chunk.runId) || this.lateRuns.includes(chunk.runId))) this.decoders.set(key, (dec = new TextDecoder()));
    const text = dec ? dec.decode(chunk.data, { stream: true }) : new TextDecoder().decode(chunk.data);
    const lines = text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
    return { runId: chunk.runId, stepId: chunk.stepId, attemptId: chunk.attemptId, stream, atMs: chunk.atMs, seq, lines };
  }

  /** A run ended: its caches go (reading them back costs a scan of its log file, so late lines of ended runs keep theirs a while). */
  forget(runId: string) {
    for (const key of this.decoders.keys()) if (key.startsWith(`${runId}/`)) this.decoders.delete(key);
    this.seqs.delete(runId);
  }

  /**
   * Late lines of a superseded attempt may reach a run that has ended: its
   * seqs and decoders stay cached for the next chunks, for the last
   * LATE_LOG_RUNS such runs only.
   */
  private remember(runId: string) {
    this.lateRuns.push(runId);
    while (this.lateRuns.length > LATE_LOG_RUNS) this.forget(this.lateRuns.shift()!);
  }
}
