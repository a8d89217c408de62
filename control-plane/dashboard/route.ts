/** Hash routes: #/fleet, #/runs, #/runs/<id>, #/metrics; `#token=…` is read once and removed. */
import { useEffect, useState } from 'preact/hooks';

export type Route = { page: 'fleet' } | { page: 'runs' } | { page: 'run'; id: string } | { page: 'metrics' };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#\/?/, '');
  const [head, ...rest] = path.split('/');
  if (head === 'runs' && rest[0]) return { page: 'run', id: decoded(rest[0]) };
  if (head === 'runs') return { page: 'runs' };
  if (head === 'metrics') return { page: 'metrics' };
  return { page: 'fleet' };
}

/** A route segment decoded; a malformed escape (#/runs/%E0) is taken as it stands. */
function decoded(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

export const href = (r: Route): string => (r.page === 'run' ? `#/runs/${encodeURIComponent(r.id)}` : `#/${r.page}`);

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

/** A clock that ticks every `ms`, for "12 s ago" and running durations. */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}
