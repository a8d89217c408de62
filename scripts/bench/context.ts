/** What every figure gets: where to put files, how big to go, and a progress line. */
export interface BenchContext {
  /** Data dirs, process logs. */
  dir: string;
  quick: boolean;
  /** When set, control planes run under `node --cpu-prof` and write their profiles here. */
  profileDir?: string;
  /** Figures 3 and 4: only these fleets (`nats.10000`, `nats-r3.1000`, …); all of the size's plans when unset. */
  fleets?: Set<string>;
  progress(message: string): void;
}

export interface FigureResult {
  rows: import('./report.js').Row[];
  details: Record<string, unknown>;
}
