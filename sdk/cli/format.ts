/** Small, pure formatters for CLI output. */

/** "3s ago", "5m ago", "2h ago", "4d ago"; "-" for 0 (never). */
export function formatAgo(atMs: number, nowMs: number = Date.now()): string {
  if (!atMs) return '-';
  const s = Math.max(0, Math.floor((nowMs - atMs) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/** "850ms", "4.2s", "3m12s", "1h04m"; "-" when negative or unknown. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const totalS = Math.floor(ms / 1000);
  if (totalS < 3600) return `${Math.floor(totalS / 60)}m${String(totalS % 60).padStart(2, '0')}s`;
  return `${Math.floor(totalS / 3600)}h${String(Math.floor(totalS / 60) % 60).padStart(2, '0')}m`;
}

/** Duration between two timestamps; a running span ends at `nowMs`. "-" if not started. */
export function formatSpan(startMs: number, endMs: number, nowMs: number = Date.now()): string {
  if (!startMs) return '-';
  return formatDuration((endMs || nowMs) - startMs);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** Binary units: "512B", "1.5KiB", "230MiB", "16GiB"; "-" for 0. */
export function formatBytes(bytes: number): string {
  if (!bytes || bytes < 0) return '-';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = unit === 0 || value >= 10 ? Math.round(value).toString() : value.toFixed(1);
  return `${text}${UNITS[unit]}`;
}

/** "42%", or "-" when there is no sample. */
export function formatPercent(value: number | undefined): string {
  return value === undefined ? '-' : `${Math.round(value)}%`;
}

/** Local wall-clock time "12:00:01". */
export function formatClock(atMs: number): string {
  const d = new Date(atMs);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

/** "k=v,k2=v2" sorted by key; "-" when empty. */
export function formatLabels(labels: Record<string, string>): string {
  const keys = Object.keys(labels).sort();
  return keys.length ? keys.map((k) => `${k}=${labels[k]}`).join(',') : '-';
}

/** CPU seconds: "0.12s", "3.4s", "2m05s"; "-" for 0. */
export function formatCpu(seconds: number): string {
  if (!seconds) return '-';
  return seconds < 1 ? `${seconds.toFixed(2)}s` : formatDuration(seconds * 1000);
}
