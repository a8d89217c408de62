/**
 * CPU seconds and peak RSS of a step's process tree, sampled from /proc.
 * Each step runs in its own process group, so "the tree" is every process
 * whose pgrp is the step's pid; utime+stime of live members plus
 * cutime+cstime (children already reaped) give its CPU time.
 * Samples come at 20 ms and 100 ms after start, then every SAMPLE_MS, so
 * short steps are seen too; a process that lives less than 20 ms may be missed.
 *
 * A sample walks each tracked tree from its leader through
 * /proc/<pid>/task/<tid>/children, plus members seen before (a process whose
 * parent exited is reparented but keeps its group), and reads only those
 * processes: a few files per step. Scanning all of /proc instead cost ~5 ms
 * per sample on a quiet host (more with more processes) and, at two samples
 * per step, doubled the run time of short steps (docs/performance.md). The
 * full scan remains for kernels without the children files.
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
  /** Members found by earlier samples. */
  members: Set<number>;
}

export class ProcStats {
  private tracked = new Map<number, Tracked>();
  private timer: NodeJS.Timeout | undefined;
  /** False once /proc/<pid>/task/<tid>/children turned out to be missing (kernel without CONFIG_PROC_CHILDREN). */
  private childrenFiles = true;

  track(pgid: number): void {
    const t: Tracked = { pgid, cpuSeconds: 0, peakRssBytes: 0, members: new Set([pgid]) };
    this.tracked.set(pgid, t);
    // The early samples look at this step only, and only if it still runs.
    const early = () => {
      if (this.tracked.get(pgid) !== t) return;
      if (!this.childrenFiles) return this.sample();
      const usage = this.walk(t);
      if (usage) this.record(t, usage);
    };
    setTimeout(early, 20).unref();
    setTimeout(early, 100).unref();
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
    if (this.childrenFiles) {
      for (const t of this.tracked.values()) {
        const usage = this.walk(t);
        if (!usage) break;
        this.record(t, usage);
      }
      if (this.childrenFiles) return;
    }
    this.scanAll();
  }

  /** The tree's usage now, from its known members and their descendants; undefined when the kernel lacks children files. */
  private walk(t: Tracked): { cpu: number; rss: number } | undefined {
    const total = { cpu: 0, rss: 0 };
    const seen = new Set<number>();
    const queue = [...t.members];
    t.members.clear();
    while (queue.length) {
      const pid = queue.pop()!;
      if (seen.has(pid)) continue;
      seen.add(pid);
      const f = statFields(pid);
      // Gone, or no longer in the group (a reused pid, or it called setsid).
      if (!f || Number(f[2]) !== t.pgid) continue;
      t.members.add(pid);
      total.cpu += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
      total.rss += Number(f[21]) * PAGE_SIZE;
      const children = childrenOf(pid);
      if (children === undefined) {
        this.childrenFiles = false;
        return undefined;
      }
      queue.push(...children);
    }
    return total;
  }

  private record(t: Tracked, usage: { cpu: number; rss: number }) {
    t.cpuSeconds = Math.max(t.cpuSeconds, usage.cpu / TICKS_PER_SECOND);
    t.peakRssBytes = Math.max(t.peakRssBytes, usage.rss);
  }

  /** Reads every process's stat and sums by process group. */
  private scanAll(): void {
    const totals = new Map<number, { cpu: number; rss: number }>();
    let entries: string[];
    try {
      entries = readdirSync('/proc');
    } catch {
      return; // not Linux: usage stays 0
    }
    for (const e of entries) {
      if (e.charCodeAt(0) > 57) continue;
      const f = statFields(Number(e));
      if (!f) continue;
      const pgrp = Number(f[2]);
      if (!this.tracked.has(pgrp)) continue;
      const t = totals.get(pgrp) ?? { cpu: 0, rss: 0 };
      t.cpu += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
      t.rss += Number(f[21]) * PAGE_SIZE;
      totals.set(pgrp, t);
    }
    for (const [pgid, t] of totals) this.record(this.tracked.get(pgid)!, t);
  }
}

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses); f[0] is field 3. */
function statFields(pid: number): string[] | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/**
 * Children of every thread of `pid`; [] when the process is gone, undefined
 * when the kernel has no children files.
 */
function childrenOf(pid: number): number[] | undefined {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const tid of tasks) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && tid === String(pid)) {
        // The task dir exists but its children file does not: no CONFIG_PROC_CHILDREN
        // (unless the process just exited; a false alarm only costs full scans).
        try {
          readdirSync(`/proc/${pid}/task/${tid}`);
        } catch {
          return [];
        }
        return undefined;
      }
      continue;
    }
    for (const c of text.split(' ')) if (c.trim()) out.push(Number(c));
  }
  return out;
}
