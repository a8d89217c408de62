import pino, { type Logger } from 'pino';

/** Root logger: JSON lines on stderr, level from --log-level or DROVER_LOG_LEVEL. */
export function createLogger(level: string): Logger {
  return pino({ name: 'drover-server', level }, pino.destination(2));
}

export type { Logger };

/** Lines about one peer allowed per window; past it they are counted, and the count is logged when the window turns. */
export const PEER_LINES_PER_WINDOW = 20;
export const PEER_WINDOW_MS = 60_000;
/** Peers tracked at once; the oldest window is dropped past it (memory stays bounded under a spray of names). */
const MAX_TRACKED_PEERS = 10_000;

/**
 * A logger for lines a peer (an agent, a client address) can cause: at most
 * PEER_LINES_PER_WINDOW per peer and window, so one hostile or broken peer
 * cannot fill the server log.
 */
export class PeerLog {
  private windows = new Map<string, { startMs: number; lines: number; suppressed: number }>();
  constructor(
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  warn(peer: string, fields: Record<string, unknown>, message: string): void {
    if (this.allow(peer)) this.log.warn(fields, message);
  }

  info(peer: string, fields: Record<string, unknown>, message: string): void {
    if (this.allow(peer)) this.log.info(fields, message);
  }

  private allow(peer: string): boolean {
    const now = this.now();
    let w = this.windows.get(peer);
    if (w && now - w.startMs >= PEER_WINDOW_MS) {
      if (w.suppressed) this.log.warn({ peer, suppressed: w.suppressed, windowMs: PEER_WINDOW_MS }, `${w.suppressed} more log lines about ${peer} were suppressed`);
      this.windows.delete(peer);
      w = undefined;
    }
    if (!w) {
      w = { startMs: now, lines: 0, suppressed: 0 };
      this.windows.set(peer, w);
      if (this.windows.size > MAX_TRACKED_PEERS) this.windows.delete(this.windows.keys().next().value!);
    }
    if (w.lines < PEER_LINES_PER_WINDOW) {
      w.lines++;
      if (w.lines === PEER_LINES_PER_WINDOW) this.log.warn({ peer }, `log lines about ${peer} are limited to ${PEER_LINES_PER_WINDOW} a minute; further ones are counted`);
      return true;
    }
    w.suppressed++;
    return false;
  }
}
