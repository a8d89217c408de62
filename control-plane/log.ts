import pino, { type Logger } from 'pino';

/** Root logger: JSON lines on stderr, level from --log-level or DROVER_LOG_LEVEL. */
export function createLogger(level: string): Logger {
  return pino({ name: 'drover-server', level }, pino.destination(2));
}

export type { Logger };
