import pino, { type Logger } from 'pino';

/** Agent logger: JSON lines on stderr, level from --log-level or DROVER_LOG_LEVEL. */
export function createLogger(level: string, name: string): Logger {
  return pino({ name: 'drover-agent', level, base: { agent: name } }, pino.destination(2));
}

export type { Logger };
