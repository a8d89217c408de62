/**
 * Host facts (sent once in Hello) and live usage (sent in each Heartbeat),
 * read with systeminformation. Disk use comes from statfs of the state dir's
 * filesystem, which spawns nothing.
 */
import { readFile, statfs } from 'node:fs/promises';
import { hostname, loadavg } from 'node:os';
import si from 'systeminformation';
import type { Facts, Heartbeat } from '../proto/index.js';
import type { Journal } from './journal.js';

export async function collectFacts(version: string): Promise<Facts> {
  const [os, cpu, mem, disks, nics] = await Promise.all([
    si.osInfo(),
    si.cpu(),
    si.mem(),
    si.fsSize().catch(() => []),
    si.networkInterfaces().catch(() => []),
  ]);
  const ifaces = Array.isArray(nics) ? nics : [nics];
  return {
    hostname: hostname(),
    os: `${os.distro} ${os.release}`.trim() || os.platform,
    osRelease: os.kernel,
    arch: process.arch,
    cpuModel: `${cpu.manufacturer} ${cpu.brand}`.trim(),
    cpuCount: cpu.cores,
    memoryBytes: mem.total,
    disks: disks.map((d) => ({ mount: d.mount, fs: d.type, sizeBytes: d.size })),
    ipAddresses: ifaces.flatMap((n) => [n.ip4, n.ip6]).filter((ip): ip is string => !!ip),
    agentVersion: version,
  };
}

export class Usage {
  constructor(
    private readonly diskPath: string,
    private readonly journal: Pick<Journal, 'bytesOnDisk' | 'unacked' | 'droppedLogBytes'>,
  ) {}

  private lastNet: (NetCounters & { atMs: number }) | undefined;

  async sample(runningSteps: number): Promise<Heartbeat> {
    const [load, mem, fs, counters] = await Promise.all([
      si.currentLoad(),
      si.mem(),
      statfs(this.diskPath).catch(() => undefined),
      netCounters(),
    ]);
    const diskPercent = fs && fs.blocks > 0 ? (100 * (fs.blocks - fs.bfree)) / fs.blocks : 0;
    let rate = { rx: 0, tx: 0 };
    if (counters) {
      const now = Date.now();
      const last = this.lastNet;
      if (last && now > last.atMs) {
        const per = (a: number, b: number) => Math.max(0, Math.round(((a - b) * 1000) / (now - last.atMs)));
        rate = { rx: per(counters.rx, last.rx), tx: per(counters.tx, last.tx) };
      }
      this.lastNet = { ...counters, atMs: now };
    } else {
      const net = await si.networkStats('*').catch(() => []);
      const sum = (k: 'rx_sec' | 'tx_sec') => Math.max(0, Math.round(net.reduce((a, n) => a + (n[k] ?? 0), 0)));
      rate = { rx: sum('rx_sec'), tx: sum('tx_sec') };
    }
    return {
      atMs: Date.now(),
      cpuPercent: round(load.currentLoad),
      memoryPercent: round((100 * mem.active) / mem.total),
      memoryUsedBytes: mem.active,
      memoryTotalBytes: mem.total,
      diskPercent: round(diskPercent),
      load: loadavg().map(round),
      netRxBytesPerSec: rate.rx,
      netTxBytesPerSec: rate.tx,
      runningSteps,
      journalBytes: this.journal.bytesOnDisk,
      journalUnacked: this.journal.unacked,
      journalDroppedLogBytes: this.journal.droppedLogBytes,
    };
  }
}

const round = (n: number) => Math.round(n * 10) / 10;

interface NetCounters {
  rx: number;
  tx: number;
}

/**
 * Bytes received and sent so far by every interface but loopback, from
 * /proc/net/dev (undefined where there is none: then systeminformation is
 * asked). One file read: systeminformation's networkStats starts a shell per
 * interface on Linux, which made heartbeats most of an idle agent's CPU use.
 */
async function netCounters(): Promise<NetCounters | undefined> {
  let text: string;
  try {
    text = await readFile('/proc/net/dev', 'latin1');
  } catch {
    return undefined;
  }
  const total = { rx: 0, tx: 0 };
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0 || line.slice(0, colon).trim() === 'lo') continue;
    const f = line.slice(colon + 1).trim().split(/\s+/);
    total.rx += Number(f[0]) || 0;
    total.tx += Number(f[8]) || 0;
  }
  return total;
}
