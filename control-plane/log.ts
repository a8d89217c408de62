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
 * At most `perWindow` events per peer and window of PEER_WINDOW_MS; past it,
 * events are counted, and `onTurn` hears the count with the peer's first
 * event of a later window. Memory stays bounded under a spray of peers.
 */
export class PeerRate {
  private windows = new Map<string, { startMs: number; n: number; suppressed: number }>();
  constructor(
    private readonly perWindow: number,
    private readonly now: () => number,
    private readonly onTurn: (peer: string, suppressed: number) => void,
    private readonly onLimit: (peer: string) => void = () => undefined,
  ) {}

  allow(peer: string): boolean {
    const now = this.now();
    let w = this.windows.get(peer);
    if (w && now - w.startMs >= PEER_WINDOW_MS) {
      if (w.suppressed) this.onTurn(peer, w.suppressed);
      this.windows.delete(peer);
      w = undefined;
    }
    if (!w) {
      w = { startMs: now, n: 0, suppressed: 0 };
      this.windows.set(peer, w);
      if (this.windows.size > MAX_TRACKED_PEERS) this.windows.delete(this.windows.keys().next().value!);
    }
    if (w.n < this.perWindow) {
      if (++w.n === this.perWindow) this.onLimit(peer);
      return true;
    }
    w.suppressed++;
    return false;
  }
}

/**
 * A logger for lines a peer (an agent, a client address) can cause: at most
 * PEER_LINES_PER_WINDOW per peer and window, so one hostile or broken peer
 * cannot fill the server log.
 */
export class PeerLog {
  private rate: PeerRate;
  constructor(
    private readonly log: Logger,
    now: () => number = Date.now,
  ) {
    this.rate = new PeerRate(
      PEER_LINES_PER_WINDOW,
      now,
      (peer, n) => log.warn({ peer, suppressed: n, windowMs: PEER_WINDOW_MS }, `${n} more log lines about ${peer} were suppressed`),
      (peer) => log.warn({ peer }, `log lines about ${peer} are limited to ${PEER_LINES_PER_WINDOW} a minute; further ones are counted`),
    );
  }

  warn(peer: string, fields: Record<string, unknown>, message: string): void {
    if (this.rate.allow(peer)) this.log.warn(fields, message);
  }

  info(peer: string, fields: Record<string, unknown>, message: string): void {
    if (this.rate.allow(peer)) this.log.info(fields, message);
  }
}
