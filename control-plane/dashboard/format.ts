/** How numbers, times and states read on the page: short, fixed-width where it matters. */

/** A duration in ms as "850 ms", "4.2 s", "3 m 20 s", "2 h 5 m". */
export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${Math.floor(s % 60)} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} m`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** How long ago `ms` was, at `now`: "just now", "12 s ago", "3 m ago". */
export function ago(ms: number, now: number): string {
  if (!ms) return 'never';
  const d = Math.max(0, now - ms);
  if (d < 2000) return 'just now';
  if (d < 60_000) return `${Math.floor(d / 1000)} s ago`;
  if (d < 3_600_000) return `${Math.floor(d / 60_000)} m ago`;
  if (d < 172_800_000) return `${Math.floor(d / 3_600_000)} h ago`;
  return `${Math.floor(d / 86_400_000)} d ago`;
}

/** A wall-clock time for a tooltip or a column: "14:03:27", with the date when not today. */
export function clock(ms: number, now: number): string {
  if (!ms) return '–';
  const d = new Date(ms);
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  return new Date(now).toDateString() === d.toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
}

export function bytes(n: number): string {
  if (!n) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

export const percent = (fraction: number): string => `${(fraction * 100).toFixed(fraction === 1 || fraction === 0 ? 0 : 1)}%`;

export const cpu = (seconds: number): string => (seconds ? `${seconds.toFixed(seconds < 10 ? 2 : 1)} s` : '–');

/** The last word of a proto enum string, lower case: 'STEP_STATUS_RUNNING' -> 'running'. */
export const enumWord = (v: string, prefix: string): string => (v.startsWith(prefix) ? v.slice(prefix.length) : v).toLowerCase();

/** A run's params as "k=v k2=v2", for a one-line summary. */
export const paramsSummary = (params: Record<string, string>): string =>
  Object.entries(params)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
