/**
 * A pino JSON log line as a person reads it, for the log tails `drover dev`
 * prints when a process fails: "12:01:02 ERROR link: cannot connect
 * server=127.0.0.1:7400 err=ECONNREFUSED". Lines that are not pino JSON
 * (a stack trace, a shell error) come back unchanged.
 */
import { formatClock } from '../format.js';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** Fields every line of a process carries, which say nothing about this line. */
const SAME_ON_EVERY_LINE = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'component', 'agent', 'v']);

/** A value longer than this is cut, with an ellipsis. */
const MAX_VALUE = 120;

function show(value: unknown): string {
  if (value && typeof value === 'object' && 'message' in value && typeof (value as { message: unknown }).message === 'string') {
    const e = value as { message: string; code?: unknown };
    value = e.code ? `${e.message} (${String(e.code)})` : e.message;
  }
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  const cut = text.length > MAX_VALUE ? `${text.slice(0, MAX_VALUE - 1)}…` : text;
  // Strings are quoted when they hold a space or an =, so that fields stay apart; JSON reads as it is.
  return typeof value === 'string' && /[\s"=]/.test(cut) ? JSON.stringify(cut) : cut;
}

/** One log line made readable: time, level, component, message, then the line's own fields as key=value. */
export function readableLogLine(line: string): string {
  if (!line.startsWith('{')) return line;
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (typeof rec !== 'object' || rec === null || typeof rec.level !== 'number') return line;
  const time = typeof rec.time === 'number' ? `${formatClock(rec.time)} ` : '';
  const level = LEVELS[rec.level] ?? `LEVEL${rec.level}`;
  const component = typeof rec.component === 'string' ? ` ${rec.component}:` : '';
  const fields = Object.entries(rec)
    .filter(([k, v]) => !SAME_ON_EVERY_LINE.has(k) && v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${show(v)}`);
  return [`${time}${level}${component} ${typeof rec.msg === 'string' ? rec.msg : ''}`.trimEnd(), ...fields].join(' ');
}
