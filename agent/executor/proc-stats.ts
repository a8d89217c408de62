/**
 * CPU seconds and peak RSS of a step's process tree, sampled from /proc.
 * Each step runs in its own process group, so "the tree" is every process
 * whose pgrp is the step's pid; utime+stime of live members plus
 * cutime+cstime (children already reaped) give its CPU time.
 * Samples come at 20 ms and 100 ms after start, then every SAMPLE_MS, so
 * short steps are seen too; a process that lives less than 20 ms may be missed.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Interval between samples of all running steps; one /proc scan serves them all. */
const SAMPLE_MS = 250;
const TICKS_PER_SECOND = 100;
const PAGE_SIZE = 4096;

export interface TreeUsage {
  cpuSeconds: number;
  peakRssBytes: number;
}

interface Tracked extends TreeUsage {
  pgid: number;
}

export class ProcStats {
  private tracked = new Map<number, Tracked>();
  private timer: NodeJS.Timeout | undefined;

  track(pgid: number): void {
    this.tracked.set(pgid, { pgid, cpuSeconds: 0, peakRssBytes: 0 });
    setTimeout(() => this.sample(), 20).unref();
    setTimeout(() => this.sample(), 100).unref();
    this.timer ??= setInterval(() => this.sample(), SAMPLE_MS).unref();
  }

  /** Takes a last sample and stops tracking. */
  untrack(pgid: number): TreeUsage {
    const t = this.tracked.get(pgid);
    this.tracked.delete(pgid);
    if (this.tracked.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
    return { cpuSeconds: t?.cpuSeconds ?? 0, peakRssBytes: t?.peakRssBytes ?? 0 };
  }

  /** Takes a sample now (call just before the step's process is reaped). */
  sample(): void {
    if (this.tracked.size === 0) return;
    const totals = new Map<number, { cpu: number; rss: number }>();
    let entries: string[];
    try {
      entries = readdirSync('/proc');
    } catch {
      return; // not Linux: usage stays 0
    }
    for (const e of entries) {
      if (e.charCodeAt(0) > 57) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${e}/stat`, 'latin1');
      } catch {
        continue;
      }
      // Fields after the command name, which may contain spaces and parentheses.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const pgrp = Number(f[2]);
      if (!this.tracked.has(pgrp)) continue;
      const cpu = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
      const rss = Number(f[21]) * PAGE_SIZE;
      const t = totals.get(pgrp) ?? { cpu: 0, rss: 0 };
      t.cpu += cpu;
      t.rss += rss;
      totals.set(pgrp, t);
    }
    for (const [pgid, t] of totals) {
      const tr = this.tracked.get(pgid)!;
      tr.cpuSeconds = Math.max(tr.cpuSeconds, t.cpu / TICKS_PER_SECOND);
      tr.peakRssBytes = Math.max(tr.peakRssBytes, t.rss);
    }
  }
}
